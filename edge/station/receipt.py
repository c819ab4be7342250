"""The receipt handed to the citizen: a one-page PDF in French (fpdf2) with a QR code (segno).

It carries the mairie, the date, the CNI request number (printed ``XXXX-XXXX-XXXX`` and as a
QR code of the bare number), the pre-request number, and how to follow the request and collect
the card. No biometric data, and of the citizen only the name the agent checked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import segno
from fpdf import FPDF

from dr_contracts.identifiers import format_request_number

FOLLOW_UP_FR = (
    "Suivez l'avancement de votre demande sur le site de l'Agence nationale des titres "
    "sécurisés (ANTS) ou auprès de votre mairie, avec le numéro de demande ci-dessus. "
    "Vous serez prévenu(e) lorsque votre carte sera disponible."
)
HANDOVER_FR = (
    "Retrait de la carte : en personne, à la mairie indiquée ci-dessus, muni(e) de ce "
    "récépissé. Une vérification d'empreinte sera faite au guichet (sauf pour les enfants "
    "de moins de 12 ans). La carte non retirée dans un délai de 3 mois est détruite."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptData:
    mairie: str
    mairie_address: str
    device_id: str
    request_number: str
    prerequest_number: str
    holder_name: str
    created_at: datetime
    offline: bool  # the number came from the device's lease while central was unreachable


def qr_png(text: str, *, scale: int = 6) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


def _latin1(text: str) -> str:
    # The PDF core fonts are Latin-1; French needs nothing beyond it except typographic marks.
    return (
        text.replace("\u2019", "'")
        .replace("\u0153", "oe")
        .replace("\u0152", "OE")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )


def render_receipt(data: ReceiptData) -> bytes:
    """The receipt as PDF bytes."""
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(f"Récépissé de demande de CNI {data.request_number}"))
    pdf.set_author(_latin1(data.mairie))
    pdf.set_creation_date(data.created_at)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1("RÉPUBLIQUE FRANÇAISE"), new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("Helvetica", "", 12)
    pdf.cell(0, 8, _latin1(data.mairie), new_x="LMARGIN", new_y="NEXT", align="C")
    if data.mairie_address:
        pdf.cell(0, 6, _latin1(data.mairie_address), new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(
        0,
        10,
        _latin1("Récépissé de demande de carte nationale d'identité"),
        new_x="LMARGIN",
        new_y="NEXT",
        align="C",
    )
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 12)
    when = data.created_at.astimezone().strftime("%d/%m/%Y à %H:%M")
    rows = [
        ("Date du dépôt", when),
        ("Demandeur", data.holder_name),
        ("Numéro de pré-demande", data.prerequest_number),
        ("Station de recueil", data.device_id),
    ]
    for label, value in rows:
        pdf.cell(70, 8, _latin1(label + " :"))
        pdf.cell(0, 8, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, _latin1("Numéro de demande de CNI :"), new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("Courier", "B", 22)
    pdf.cell(
        0, 12, format_request_number(data.request_number), new_x="LMARGIN", new_y="NEXT", align="C"
    )
    y = pdf.get_y() + 2
    pdf.image(io.BytesIO(qr_png(data.request_number)), x=(210 - 40) / 2, y=y, w=40, h=40)
    pdf.set_y(y + 44)
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(0, 6, _latin1(FOLLOW_UP_FR), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.multi_cell(0, 6, _latin1(HANDOVER_FR), new_x="LMARGIN", new_y="NEXT")
    if data.offline:
        pdf.ln(2)
        pdf.set_font("Helvetica", "I", 10)
        pdf.multi_cell(
            0,
            5,
            _latin1(
                "Demande enregistrée hors connexion : elle sera transmise automatiquement "
                "dès le retour du réseau. Le numéro ci-dessus reste valable."
            ),
            new_x="LMARGIN",
            new_y="NEXT",
        )
    return bytes(pdf.output())


def write_receipt(data: ReceiptData, *, directory: Path) -> Path:
    """Writes the PDF atomically as ``<request number>.pdf`` and returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{data.request_number}.pdf"
    tmp = path.with_suffix(".pdf.tmp")
    tmp.write_bytes(render_receipt(data))
    tmp.replace(path)
    return path
