"""The station workflow: agents, sessions, finger policy, sealing, receipts, handover."""
