"""The controlled vocabulary of skills: each skill's tag and the other names (Danish) it
goes by. Ambassadors type their skills freely ("lektie-hjælp", "Lektiecafé"); the matching
reads every tag as one of these where it can (``skills.SkillReader``), so one skill is
one skill however it is written. Staff join two names with ``skills merge``.

Tags are written as profiles store them (``contracts.ambassadors.normalise_skill``): lower
case, hyphens for spaces.
"""

from __future__ import annotations

VOCABULARY: dict[str, tuple[str, ...]] = {
    "lektiehjælp": ("lektiecafé", "lektiecafe", "lektier", "skolehjælp"),
    "mentor": ("mentorordning", "mentorskab", "mentorer"),
    "madlavning": ("mad", "køkken", "fællesspisning"),
    "bisidder": ("bisiddere", "bisidning"),
    "rådgivning": ("vejledning", "råd-og-vejledning"),
    "gældsrådgivning": ("gæld", "økonomisk-rådgivning", "økonomi", "budgetrådgivning"),
    "juridisk-rådgivning": ("jura", "retshjælp", "juridisk-bistand"),
    "boligsocialt-arbejde": ("boligsocial", "bolig", "boligrådgivning"),
    "housing-first": ("hf",),
    "misbrug": ("rusmidler", "misbrugsbehandling", "alkohol", "stoffer"),
    "behandling": ("terapi", "psykoterapi"),
    "psykiatri": ("mental-sundhed", "psykisk-sårbarhed", "psykisk-sygdom"),
    "sorg": ("sorggruppe", "sorgstøtte", "sorgrådgivning"),
    "krisehjælp": ("krise", "krisestøtte"),
    "ensomhed": ("venskab", "besøgsven", "besøgsvenner"),
    "fællesskab": ("fællesskaber", "inkluderende-fællesskaber"),
    "idræt": ("sport", "motion", "foreningsidræt"),
    "sundhed": ("sundhedsfremme", "forebyggelse", "tandpleje"),
    "beskæftigelse": ("job", "jobformidling", "virksomhedspraktik", "praktik"),
    "uddannelse": ("undervisning", "kurser", "efteruddannelse"),
    "formidling": ("kommunikation", "sociale-medier", "presse"),
    "frivillige": ("frivillighed", "frivilligkoordinering", "frivilligt-arbejde"),
    "netværk": ("netværksdannelse", "erhvervsnetværk"),
    "it-hjælp": ("it", "digital-hjælp", "computer", "digitalisering"),
    "tolkning": ("tolk", "sprog", "oversættelse"),
    "værested": ("væresteder", "cafe", "mødested"),
    "gadearbejde": ("gadeplan", "opsøgende-arbejde"),
    "hjemløshed": ("hjemløse", "hjemløseområdet"),
    "fundraising": ("fondsansøgninger", "fonde"),
    "facilitering": ("mødeledelse", "workshops", "procesledelse"),
    "projektledelse": ("projektstyring", "koordinering"),
    "arrangementer": ("events", "eventplanlægning"),
    "kreative-aktiviteter": ("kreativitet", "kunst", "musik", "kultur"),
    "natur": ("friluftsliv", "naturoplevelser"),
    "unge": ("ungdom", "ungearbejde"),
    "ældre": ("seniorer", "ældreområdet"),
    "familier": ("familie", "forældre", "børn", "familiearbejde"),
    "vold-i-nære-relationer": ("vold", "partnervold"),
    "peerstøtte": ("peer", "ligemand", "ligemandsarbejde", "selvhjælp"),
    "brugerinddragelse": ("inddragelse", "borgerinddragelse"),
    "brobygning": ("brobygger", "brobyggere"),
    "rekruttering": ("hvervning",),
    "forskning": ("evaluering", "analyse"),
    "veteraner": ("veteran",),
}
