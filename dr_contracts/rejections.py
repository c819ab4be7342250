"""Why central refuses something, as a code the station acts on and a French text it shows.

Every refusal central sends back (to an enrolment, a pre-request lookup, a stamp check, a
number lease, a handover) is a :class:`Rejection`: a stable machine code (:class:`RejectionCode`,
English, part of the contract), the French message for the agent (:data:`MESSAGES_FR`), an
English detail for logs (never personal or biometric data), and whether sending the same thing
again later can succeed (``retryable``: only for central's own transient failures).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class RejectionCode(StrEnum):
    """Stable codes; the station maps them to what the agent must do."""

    # The envelope and its sender
    MALFORMED_ENVELOPE = "malformed_envelope"
    TOO_LARGE = "too_large"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    DEVICE_MISMATCH = "device_mismatch"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_RECIPIENT_KEY = "unknown_recipient_key"
    DECRYPTION_FAILED = "decryption_failed"
    REPLAYED = "replayed"
    # The enrolment record
    INVALID_RECORD = "invalid_record"
    INVALID_TEMPLATE = "invalid_template"
    FINGER_RULES = "finger_rules"
    QUALITY_FIELDS = "quality_fields"
    # Pre-request
    PREREQUEST_MALFORMED = "prerequest_malformed"
    PREREQUEST_UNKNOWN = "prerequest_unknown"
    PREREQUEST_CONSUMED = "prerequest_consumed"
    PREREQUEST_EXPIRED = "prerequest_expired"
    # Tax stamp
    STAMP_MALFORMED = "stamp_malformed"
    STAMP_REQUIRED = "stamp_required"
    STAMP_UNKNOWN = "stamp_unknown"
    STAMP_USED = "stamp_used"
    STAMP_CANCELLED = "stamp_cancelled"
    STAMP_EXPIRED = "stamp_expired"
    STAMP_WRONG_AMOUNT = "stamp_wrong_amount"
    # Request numbers
    NUMBER_MALFORMED = "number_malformed"
    NUMBER_MISTYPED = "number_mistyped"
    NUMBER_UNKNOWN = "number_unknown"
    NUMBER_NOT_LEASED = "number_not_leased"
    NUMBER_ALREADY_USED = "number_already_used"
    LEASE_LIMIT = "lease_limit"
    # Card handover
    NOT_AVAILABLE_FOR_HANDOVER = "not_available_for_handover"
    WRONG_MAIRIE = "wrong_mairie"
    NO_HANDOVER_KEY = "no_handover_key"
    # Central itself
    INTERNAL_ERROR = "internal_error"


MESSAGES_FR: Final[dict[RejectionCode, str]] = {
    RejectionCode.MALFORMED_ENVELOPE: "Le dossier transmis est illisible. Il doit être refait.",
    RejectionCode.TOO_LARGE: "Le dossier transmis dépasse la taille autorisée.",
    RejectionCode.UNKNOWN_DEVICE: "Ce poste n'est pas enregistré auprès du service central.",
    RejectionCode.REVOKED_DEVICE: "Ce poste a été révoqué : contactez l'assistance.",
    RejectionCode.DEVICE_MISMATCH: "Le dossier ne provient pas du poste qui l'a transmis.",
    RejectionCode.BAD_SIGNATURE: "La signature du dossier est invalide : dossier refusé.",
    RejectionCode.UNKNOWN_RECIPIENT_KEY: (
        "Le dossier a été chiffré pour une clé inconnue du service central : "
        "mettez à jour la configuration du poste."
    ),
    RejectionCode.DECRYPTION_FAILED: "Le dossier ne peut pas être déchiffré : dossier refusé.",
    RejectionCode.REPLAYED: "Ce dossier a déjà été transmis avec un contenu différent : refusé.",
    RejectionCode.INVALID_RECORD: "Le contenu du dossier est incomplet ou invalide.",
    RejectionCode.INVALID_TEMPLATE: "Une empreinte du dossier est illisible : reprenez-la.",
    RejectionCode.FINGER_RULES: (
        "Le dossier doit comporter deux empreintes, ou une exception justifiée pour chaque "
        "doigt manquant."
    ),
    RejectionCode.QUALITY_FIELDS: "Les indicateurs de qualité des empreintes sont invalides.",
    RejectionCode.PREREQUEST_MALFORMED: (
        "Le numéro de pré-demande doit comporter 10 caractères (lettres et chiffres)."
    ),
    RejectionCode.PREREQUEST_UNKNOWN: "Ce numéro de pré-demande est inconnu.",
    RejectionCode.PREREQUEST_CONSUMED: "Cette pré-demande a déjà été utilisée pour une demande.",
    RejectionCode.PREREQUEST_EXPIRED: (
        "Cette pré-demande a expiré (validité d'un an) : l'usager doit en faire une nouvelle."
    ),
    RejectionCode.STAMP_MALFORMED: "Le numéro de timbre fiscal doit comporter 16 chiffres.",
    RejectionCode.STAMP_REQUIRED: (
        "Un timbre fiscal est obligatoire pour une demande après perte ou vol."
    ),
    RejectionCode.STAMP_UNKNOWN: "Ce timbre fiscal est inconnu.",
    RejectionCode.STAMP_USED: "Ce timbre fiscal a déjà été utilisé.",
    RejectionCode.STAMP_CANCELLED: "Ce timbre fiscal a été annulé.",
    RejectionCode.STAMP_EXPIRED: "Ce timbre fiscal a expiré (validité de 12 mois).",
    RejectionCode.STAMP_WRONG_AMOUNT: "Le montant de ce timbre fiscal ne convient pas.",
    RejectionCode.NUMBER_MALFORMED: (
        "Le numéro de demande doit comporter 12 caractères (lettres et chiffres)."
    ),
    RejectionCode.NUMBER_MISTYPED: (
        "Ce numéro de demande contient une erreur de saisie : vérifiez-le caractère par caractère."
    ),
    RejectionCode.NUMBER_UNKNOWN: "Aucune demande ne porte ce numéro.",
    RejectionCode.NUMBER_NOT_LEASED: (
        "Ce numéro de demande n'a pas été attribué à ce poste : dossier refusé."
    ),
    RejectionCode.NUMBER_ALREADY_USED: "Ce numéro de demande a déjà été utilisé.",
    RejectionCode.LEASE_LIMIT: "Ce poste détient déjà assez de numéros de demande.",
    RejectionCode.NOT_AVAILABLE_FOR_HANDOVER: (
        "Le titre n'est pas disponible en mairie pour cette demande."
    ),
    RejectionCode.WRONG_MAIRIE: "Ce titre doit être remis dans une autre mairie.",
    RejectionCode.NO_HANDOVER_KEY: (
        "Ce poste n'a pas de clé de remise : il doit être provisionné à nouveau."
    ),
    RejectionCode.INTERNAL_ERROR: (
        "Le service central rencontre un problème : le dossier sera renvoyé automatiquement."
    ),
}

_RETRYABLE: Final = frozenset({RejectionCode.INTERNAL_ERROR})


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal from central: code, French message, English detail, retryable."""

    code: RejectionCode
    detail: str = ""

    @property
    def message_fr(self) -> str:
        return MESSAGES_FR[self.code]

    @property
    def retryable(self) -> bool:
        return self.code in _RETRYABLE

    def to_dict(self) -> dict[str, Any]:
        """JSON/CBOR-friendly form (message included, for stations with older code tables)."""
        return {
            "code": self.code.value,
            "message_fr": self.message_fr,
            "detail": self.detail,
            "retryable": self.retryable,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rejection:
        """Inverse of :meth:`to_dict`; an unknown code raises ``ValueError``."""
        return cls(code=RejectionCode(data["code"]), detail=str(data.get("detail", "")))


class RejectedError(Exception):
    """Raised inside central (and by clients that prefer exceptions) to carry a rejection."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.code}: {rejection.detail}")
        self.rejection = rejection

    @classmethod
    def of(cls, code: RejectionCode, detail: str = "") -> RejectedError:
        return cls(Rejection(code, detail))
