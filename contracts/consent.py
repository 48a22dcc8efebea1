"""The consent a person gives when they sign up as an ambassador, by version.

A published text is never edited: a new wording is a new version, so an ambassador's record
(the version and when it was given) always points at the words they actually read. The
ambassadors service records the version it runs with (``SAMSKAB_CONSENT_TEXT_VERSION``) and
answers the text of it to the website, which shows it in full on the sign-up form.
"""

from __future__ import annotations

CONSENT_TEXTS: dict[str, str] = {
    "2026-11": (
        "Jeg giver samtykke til, at Fredericia Kommune gemmer og bruger de oplysninger, jeg "
        "har skrevet i formularen (navn, e-mail, telefon, organisation, hjemmeside, "
        "beskrivelse, temaer, kerneområder og kompetencer), til at drive ambassadørnetværket "
        "mod social udsathed: til at invitere mig til møder og handlingsnetværk, sende mig "
        "mit ambassadørbevis og nyt fra netværket, og føre statistik over netværkets mål.\n\n"
        "Har jeg valgt at blive vist i oversigten over ambassadører, vises mit navn eller "
        "min organisation, beskrivelsen, hjemmesiden, temaerne og kerneområderne på "
        "hjemmesiden. E-mail og telefon vises aldrig offentligt.\n\n"
        "Oplysningerne deles ikke med andre end de medarbejdere, der driver netværket. Jeg "
        "kan når som helst trække mit samtykke tilbage og bede om at få mine oplysninger "
        "slettet ved at skrive til netværkets projektledere; så slettes alle personlige "
        "oplysninger, og kun et anonymt tal i statistikken bliver tilbage. Jeg har ret til "
        "at få indsigt i de oplysninger, der er gemt om mig."
    ),
}

CURRENT_CONSENT_VERSION = "2026-11"
CONSENT_VERSION_MAX = 40
