"""The fixed vocabularies used everywhere: finding categories, severities, speakers."""

CATEGORIES: tuple[str, ...] = (
    "threat",
    "insult",
    "harassment",
    "third_party_disclosure",
    "impersonation",
    "false_legal_claim",
    "inducement_to_borrow",
    "pii_exposure",
    "missing_disclosure",
    "contact_time",
    "contact_frequency",
    "conduct",  # how it was said, from the audio: overtalk, shouting, dead air, pace
    "other",
)

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

# Weights used for call risk scores; kept here so SQL views and Python agree.
SEVERITY_WEIGHT: dict[str, int] = {"low": 1, "medium": 3, "high": 6, "critical": 10}

SPEAKERS: tuple[str, ...] = ("agent", "customer", "unknown")
