"""The pre-request recap (PDF, French) the citizen brings to the mairie.

It carries the pre-request number in clear and in a QR code whose payload is signed by central
(:mod:`dr_contracts.qr`), so the DR rejects a forged or altered code offline.
"""

from __future__ import annotations

import io

import segno
from fpdf import FPDF

from central.models import REASON_FR, PreRequest

_SEX_FR = {"F": "Féminin", "M": "Masculin"}


def _latin1(text: str) -> str:
    # The PDF core fonts are Latin-1: typographic quotes and ligatures get their plain forms.
    replaced = text.replace("\u2019", "'").replace("\u0153", "oe").replace("\u0152", "OE")
    return replaced.encode("latin-1", "replace").decode("latin-1")


def render_recap(prerequest: PreRequest, *, qr_payload: str) -> bytes:
    """PDF bytes of the recap of ``prerequest`` with the signed ``qr_payload``."""
    form = prerequest.form
    pdf = FPDF(format="A4")
    pdf.set_title("Récapitulatif de pré-demande")
    pdf.set_author("Service central DR")
    pdf.set_creation_date(prerequest.created_at)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(
        0, 10, _latin1("Pré-demande de carte nationale d'identité"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 7, _latin1("Récapitulatif à présenter en mairie"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Courier", "B", 22)
    number = prerequest.number
    pdf.cell(0, 12, f"{number[:5]} {number[5:]}", new_x="LMARGIN", new_y="NEXT")
    qr_png = io.BytesIO()
    segno.make(qr_payload, error="m").save(qr_png, kind="png", scale=4, border=2)
    qr_png.seek(0)
    pdf.image(qr_png, x=150, y=20, w=45, h=45)
    pdf.ln(6)
    pdf.set_font("Helvetica", "", 11)
    rows = [
        ("Nom", form.surname.upper()),
        ("Nom d'usage", form.usage_name or "-"),
        ("Prénoms", form.given_names),
        ("Sexe", _SEX_FR[form.sex]),
        ("Né(e) le", form.birth_date.strftime("%d/%m/%Y")),
        ("à", f"{form.birth_place} ({form.birth_country})"),
        ("Nationalité", form.nationality),
        ("Adresse", f"{form.address_line}, {form.postcode} {form.city}"),
        ("Taille", f"{form.height_cm} cm"),
        ("Couleur des yeux", form.eye_colour),
        ("Motif", REASON_FR[form.reason]),
        ("Valable jusqu'au", prerequest.expires_at.strftime("%d/%m/%Y")),
    ]
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(50, 7, _latin1(label))
        pdf.set_font("Helvetica", "", 11)
        pdf.cell(0, 7, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    notes = [
        "Prenez rendez-vous dans une mairie équipée d'un dispositif de recueil.",
        "Apportez ce récapitulatif (ou son numéro), une photo d'identité récente, "
        "un justificatif de domicile et, le cas échéant, l'ancienne carte.",
        "En cas de perte ou de vol, un timbre fiscal de 25 EUR est demandé (12,50 EUR en Guyane).",
        "Cette pré-demande est valable un an et ne peut servir qu'à une seule demande.",
    ]
    for note in notes:
        pdf.multi_cell(0, 6, _latin1(f"- {note}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
