"""Clinical vocabulary of the builtin engine: encounter kinds, conditions, panels, drugs.

Codes and descriptions are those real Synthea 3.x writes (SNOMED-CT, LOINC, RxNorm, CVX),
with commas replaced by spaces as Synthea's CSV exporter does. The observation codes are
the ones in the catalogue measured from real Synthea output (catalogue/observations.csv).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Encounter classes, in the order used by the class-probability tables below.
CLASSES = ("wellness", "ambulatory", "outpatient", "urgentcare", "emergency", "inpatient",
           "home", "snf", "hospice")


@dataclass(frozen=True)
class EncounterKind:
    """A kind of visit: its Synthea class, SNOMED code, cost and length."""

    name: str
    cls: str
    code: str
    description: str
    base_cost: float
    minutes: int


KINDS: tuple[EncounterKind, ...] = (
    EncounterKind("wellness", "wellness", "162673000", "General examination of patient (procedure)", 136.80, 15),
    EncounterKind("well_child", "wellness", "410620009", "Well child visit (procedure)", 136.80, 15),
    EncounterKind("problem", "ambulatory", "185347001", "Encounter for problem (procedure)", 85.55, 15),
    EncounterKind("symptom", "ambulatory", "185345009", "Encounter for symptom (procedure)", 85.55, 15),
    EncounterKind("follow_up", "ambulatory", "390906007", "Follow-up encounter (procedure)", 85.55, 15),
    EncounterKind("prenatal", "ambulatory", "424619006", "Prenatal visit (regime/therapy)", 85.55, 30),
    EncounterKind("check_up", "outpatient", "185349003", "Encounter for check up (procedure)", 85.55, 30),
    EncounterKind("procedure", "outpatient", "371883000", "Outpatient procedure (procedure)", 85.55, 60),
    EncounterKind("urgent", "urgentcare", "702927004", "Urgent care clinic (environment)", 85.55, 60),
    EncounterKind("emergency", "emergency", "50849002", "Emergency room admission (procedure)", 146.18, 120),
    EncounterKind("inpatient", "inpatient", "32485007", "Hospital admission (procedure)", 106.19, 2880),
    EncounterKind("home", "home", "308335008", "Patient encounter procedure (procedure)", 85.55, 30),
    EncounterKind("snf", "snf", "449411000124106", "Admission to skilled nursing facility (procedure)", 106.19, 14400),
    EncounterKind("hospice", "hospice", "305336008", "Admission to hospice (procedure)", 85.55, 20160),
    EncounterKind("death", "ambulatory", "308646001", "Death Certification", 85.55, 15),
)
KIND = {k.name: i for i, k in enumerate(KINDS)}

# Share of non-wellness visits by kind (before age and disease adjustments).
VISIT_MIX: dict[str, float] = {
    "problem": 0.26, "symptom": 0.20, "follow_up": 0.14, "check_up": 0.13, "procedure": 0.08,
    "urgent": 0.08, "emergency": 0.06, "inpatient": 0.03, "home": 0.015, "snf": 0.005,
}


@dataclass(frozen=True)
class Chronic:
    """A chronic condition the generator models, with how it shows in the record."""

    name: str
    code: str
    description: str
    onset_min_age: int
    age_slope: float  # log-odds change per decade of age around 60
    male_ratio: float  # prevalence in men relative to women
    medication: tuple[str, str, float] | None  # (RxNorm, description, base cost)
    careplan: tuple[str, str] | None


CHRONIC: tuple[Chronic, ...] = (
    Chronic("hypertension", "59621000", "Essential hypertension (disorder)", 25, 0.55, 1.15,
            ("314076", "lisinopril 10 MG Oral Tablet", 11.72),
            ("443402002", "Lifestyle education regarding hypertension (procedure)")),
    Chronic("diabetes", "44054006", "Diabetes mellitus type 2 (disorder)", 30, 0.45, 1.25,
            ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", 26.48),
            ("698360004", "Diabetes self management plan (record artifact)")),
    Chronic("kidney_disease", "433144002", "Chronic kidney disease stage 3 (disorder)", 40, 0.75,
            0.9, None, None),
    Chronic("obesity", "162864005", "Body mass index 30+ - obesity (finding)", 18, 0.05, 0.95,
            None, ("718361005", "Weight reduction regime (regime/therapy)")),
    Chronic("smoking", "449868002", "Smokes tobacco daily (finding)", 16, -0.25, 1.45, None,
            None),
    Chronic("coronary", "53741008", "Coronary Heart Disease (disorder)", 40, 0.8, 2.2,
            ("312961", "Simvastatin 20 MG Oral Tablet", 16.24), None),
    Chronic("osteoporosis", "64859006", "Osteoporosis (disorder)", 50, 0.9, 0.25,
            ("904419", "Alendronic acid 10 MG Oral Tablet", 22.05), None),
    Chronic("anemia", "271737000", "Anemia (disorder)", 16, 0.0, 0.35,
            ("310325", "ferrous sulfate 325 MG Oral Tablet", 4.90), None),
)
CHRONIC_INDEX = {c.name: i for i, c in enumerate(CHRONIC)}
# Country-specific prevalence for the first five; the rest use these adult rates at 60.
OTHER_PREVALENCE = {"coronary": 0.07, "osteoporosis": 0.10, "anemia": 0.06}

# Acute problems behind symptom/urgent/emergency visits: (SNOMED, description, days, group).
ACUTE: tuple[tuple[str, str, int, str], ...] = (
    ("444814009", "Viral sinusitis (disorder)", 14, "respiratory"),
    ("10509002", "Acute bronchitis (disorder)", 14, "respiratory"),
    ("195662009", "Acute viral pharyngitis (disorder)", 10, "respiratory"),
    ("840539006", "COVID-19 (disorder)", 21, "respiratory"),
    ("65363002", "Otitis media (disorder)", 14, "other"),
    ("44465007", "Sprain of ankle (disorder)", 28, "injury"),
    ("16114001", "Fracture of ankle (disorder)", 56, "injury"),
    ("283371005", "Laceration of forearm (disorder)", 21, "injury"),
    ("68566005", "Urinary tract infectious disease (disorder)", 10, "other"),
    ("39848009", "Whiplash injury to neck (disorder)", 35, "injury"),
)
ACUTE_WEIGHTS = (0.2, 0.16, 0.14, 0.06, 0.08, 0.1, 0.05, 0.07, 0.08, 0.06)
ACUTE_GROUPS = ("respiratory", "injury", "other")
ACUTE_DRUGS = {
    "respiratory": ("313782", "Acetaminophen 325 MG Oral Tablet", 8.01),
    "injury": ("198405", "Ibuprofen 100 MG Oral Tablet", 46.81),
    "other": ("308192", "Amoxicillin 500 MG Oral Tablet", 241.20),
}

PREGNANCY = ("72892002", "Normal pregnancy (finding)")
MED_REVIEW = ("314529007", "Medication review due (situation)")
SOCIAL_FINDINGS = (
    ("160903007", "Full-time employment (finding)"),
    ("73595000", "Stress (finding)"),
    ("741062008", "Not in labor force (finding)"),
    ("424393004", "Reports of violence in the environment (finding)"),
)

# Procedures: (SNOMED, description, base cost).
WELLNESS_PROCEDURES = (
    ("710824005", "Assessment of health and social care needs (procedure)", 431.40),
    ("171207006", "Depression screening (procedure)", 431.40),
    ("428211000124100", "Assessment of substance use (procedure)", 431.40),
)
MED_RECONCILIATION = ("430193006", "Medication reconciliation (procedure)", 689.83)
PROCEDURES_BY_GROUP = {
    "respiratory": ("117015009", "Throat culture (procedure)", 2142.76),
    "injury": ("168594001", "Plain X-ray of ankle (procedure)", 431.40),
    "other": ("23426006", "Measurement of respiratory function (procedure)", 431.40),
}
DIALYSIS = ("265764009", "Renal dialysis (procedure)", 1314.80)
COLONOSCOPY = ("73761001", "Colonoscopy (procedure)", 10823.45)
BONE_SCAN = ("312681000", "Bone density scan (procedure)", 431.40)
PREGNANCY_TEST = ("252160004", "Standard pregnancy test (procedure)", 431.40)

# Immunizations: (CVX, description, base cost).
FLU = ("140", "Influenza  seasonal  injectable  preservative free", 136.00)
TD = ("113", "Td (adult) preservative free", 136.00)
PNEUMO = ("133", "Pneumococcal conjugate PCV 13", 136.00)
ZOSTER = ("121", "zoster", 136.00)

ALLERGIES = (
    ("419199007", "Allergy to substance (finding)", "allergy", "environment"),
    ("84489001", "Mold (organism)", "allergy", "environment"),
    ("260147004", "House dust mite (organism)", "allergy", "environment"),
    ("762952008", "Peanut (substance)", "allergy", "food"),
    ("7984001", "Penicillin V (substance)", "allergy", "medication"),
)


@dataclass(frozen=True)
class Panel:
    """A group of observation codes recorded together at one visit.

    The chance a panel is recorded at a visit is p_kind[kind] times the sex, age and
    disease factors; serum_codes, when set, replace codes at labs that report on serum.
    """

    name: str
    codes: tuple[str, ...]
    p_kind: dict[str, float]
    age: tuple[float, float] = (0, 200)
    sex_factor: tuple[float, float] = (1.0, 1.0)  # (female, male)
    boost: dict[str, float] = field(default_factory=dict)  # chronic name -> multiplier
    needs: str | None = None  # a chronic condition or acute group the visit must have
    habit: str | None = None  # Country attribute multiplying the chance
    serum_codes: tuple[str, ...] = ()


_ALL_VISITS = {"wellness": 1.0, "well_child": 1.0, "problem": 1.0, "symptom": 1.0,
               "follow_up": 1.0, "prenatal": 1.0, "check_up": 1.0, "procedure": 1.0,
               "urgent": 1.0, "emergency": 1.0, "inpatient": 1.0, "home": 1.0, "snf": 1.0,
               "hospice": 1.0}

VITALS = ("8302-2", "29463-7", "39156-5", "8462-4", "8480-6", "8867-4", "9279-1", "72514-3")
BMP_BLOOD = ("2339-0", "6299-2", "38483-4", "49765-1", "2947-0", "6298-4", "2069-3", "20565-8")
BMP_SERUM = ("2345-7", "3094-0", "2160-0", "17861-6", "2951-2", "2823-3", "2075-0", "2028-9")
PRAPARE = ("93038-8", "93029-7", "93033-9", "67875-5", "71802-3", "63586-2", "76437-3",
           "82589-3", "76501-6", "93030-5", "93031-3", "93027-1", "93026-3", "93028-9",
           "63512-8", "56799-0", "56051-6", "93034-7", "93035-4", "54899-0", "32624-9")

PANELS: tuple[Panel, ...] = (
    Panel("vitals", VITALS, {"wellness": 1.0, "well_child": 1.0, "prenatal": 0.9, "check_up": 0.6,
                             "urgent": 0.9, "emergency": 0.5, "inpatient": 0.8, "problem": 0.1,
                             "symptom": 0.15, "follow_up": 0.3, "home": 0.6, "snf": 0.7,
                             "hospice": 0.5}),
    Panel("pain", ("72514-3",), {"problem": 0.6, "symptom": 0.7, "follow_up": 0.5,
                                  "procedure": 0.5}),
    Panel("tobacco", ("72166-2",), {"wellness": 1.0, "check_up": 0.4, "prenatal": 0.5},
          age=(12, 200)),
    Panel("prapare", PRAPARE, {"wellness": 1.0, "check_up": 0.3}, age=(18, 200),
          habit="social_surveys"),
    Panel("phq2", ("55758-7",), {"wellness": 1.0, "prenatal": 0.3}, age=(12, 200),
          habit="mental_screens"),
    Panel("gad7", ("70274-6",), {"wellness": 0.6, "problem": 0.05}, age=(12, 200),
          sex_factor=(1.1, 0.95), habit="mental_screens"),
    Panel("phq9", ("44261-6",), {"wellness": 0.04, "follow_up": 0.05}, age=(18, 200),
          sex_factor=(1.15, 0.9)),
    Panel("phq9_teen", ("89204-2",), {"wellness": 0.8}, age=(12, 18)),
    Panel("audit_c", ("75626-2",), {"wellness": 0.35}, age=(18, 200), sex_factor=(0.92, 1.08),
          boost={"smoking": 1.6}),
    Panel("dast10", ("82667-7",), {"wellness": 0.3}, age=(18, 200), sex_factor=(0.92, 1.08),
          boost={"smoking": 1.5}),
    Panel("hark", ("76504-0",), {"wellness": 0.45, "prenatal": 0.5}, age=(16, 200),
          sex_factor=(1.0, 0.8)),
    Panel("fall_risk", ("59460-6", "59461-4"), {"wellness": 0.8, "inpatient": 0.7, "snf": 1.0},
          age=(65, 200)),
    Panel("mmse", ("72106-8",), {"wellness": 0.05, "snf": 0.4}, age=(75, 200)),
    Panel("cbc", ("6690-2", "789-8", "718-7", "4544-3", "787-2", "785-6", "786-4", "21000-5",
                  "777-3", "32207-3", "32623-1"),
          {"wellness": 0.12, "check_up": 0.35, "procedure": 0.4, "urgent": 0.25,
           "emergency": 0.5, "inpatient": 1.0, "prenatal": 0.35, "snf": 0.5},
          sex_factor=(1.05, 0.95), boost={"anemia": 3.0, "kidney_disease": 2.0}),
    Panel("cbc_diff", ("770-8", "736-9", "5905-5", "713-8", "706-2", "751-8", "731-0", "742-7",
                       "711-2", "704-7"),
          {"emergency": 0.25, "inpatient": 0.6, "urgent": 0.05}),
    Panel("bmp", BMP_BLOOD, {"wellness": 0.12, "check_up": 0.4, "follow_up": 0.4,
                             "emergency": 0.45, "inpatient": 1.0, "urgent": 0.1, "snf": 0.5},
          boost={"hypertension": 1.8, "diabetes": 2.0, "kidney_disease": 3.0},
          serum_codes=BMP_SERUM),
    Panel("cmp_extra", ("2885-2", "1751-7", "1975-2", "6768-6", "1742-6", "1920-8", "10834-0"),
          {"check_up": 0.15, "emergency": 0.2, "inpatient": 0.6, "follow_up": 0.1},
          boost={"kidney_disease": 2.0, "diabetes": 1.5}),
    Panel("lipids", ("2093-3", "2571-8", "18262-6", "2085-9"),
          {"wellness": 0.2, "check_up": 0.25, "follow_up": 0.2}, age=(20, 200),
          sex_factor=(0.95, 1.05), boost={"diabetes": 1.8, "hypertension": 1.4, "coronary": 2.5,
                                         "obesity": 1.3}),
    Panel("hba1c", ("4548-4",), {"wellness": 0.05, "follow_up": 0.6, "check_up": 0.1},
          age=(18, 200), boost={"diabetes": 12.0, "obesity": 2.0}),
    Panel("renal", ("33914-3", "14959-1"), {"follow_up": 0.5, "check_up": 0.1, "wellness": 0.02},
          boost={"kidney_disease": 10.0, "diabetes": 4.0}),
    Panel("urinalysis", ("5767-9", "5778-6", "32167-9", "34533-0", "25428-4", "5811-5", "2514-8",
                         "20454-5", "5803-2", "5802-4", "5799-2", "5794-3", "5770-3", "5804-0",
                         "5792-7", "20505-4", "5797-6"),
          {"prenatal": 0.45, "follow_up": 0.08, "emergency": 0.1, "inpatient": 0.25,
           "symptom": 0.04}, boost={"diabetes": 3.0, "kidney_disease": 3.0}),
    Panel("pregnancy", ("82810-3",), {"prenatal": 0.8}),
    Panel("temperature", ("8310-5",), {"urgent": 0.9, "emergency": 0.7, "symptom": 0.5,
                                        "inpatient": 0.5}, needs="respiratory"),
    Panel("resp_virus", ("92142-9", "92141-1", "92131-2", "92140-3", "92139-5", "92138-7",
                         "92134-6", "92130-4", "94040-3"),
          {"urgent": 0.15, "emergency": 0.3, "inpatient": 0.4}, needs="respiratory"),
    Panel("flu_antigen", ("80382-5", "80383-3"), {"urgent": 0.2, "symptom": 0.1},
          needs="respiratory"),
    Panel("covid", ("94531-1",), {"urgent": 0.3, "emergency": 0.5, "symptom": 0.15,
                                  "inpatient": 0.6}, needs="respiratory"),
    Panel("cardiac", ("89579-7", "33762-6"), {"emergency": 0.12, "inpatient": 0.3,
                                              "follow_up": 0.02},
          sex_factor=(0.85, 1.15), boost={"coronary": 5.0, "hypertension": 1.5}),
    Panel("echo", ("10230-1", "88020-3", "88021-1"), {"follow_up": 0.03, "inpatient": 0.1},
          boost={"coronary": 6.0}),
    Panel("inflammation", ("2276-4", "14804-9", "1988-5", "2157-6", "48065-7", "33959-8",
                           "5902-2", "6301-6"), {"inpatient": 0.45, "emergency": 0.06}),
    Panel("blood_gas", ("2744-1", "2703-7", "1960-4", "2019-8", "19994-3", "2708-6"),
          {"inpatient": 0.12, "emergency": 0.02}, boost={"smoking": 2.0}),
    Panel("iron", ("2498-4", "2500-7", "2502-3", "2276-4"), {"check_up": 0.04, "follow_up": 0.05,
                                                           "prenatal": 0.1},
          sex_factor=(1.3, 0.75), boost={"anemia": 8.0}),
    Panel("allergy_ige", ("6248-9", "6106-9", "6158-0", "6189-5", "6844-5", "6276-0", "7258-7",
                          "6833-8", "6273-7", "6246-3", "6085-5", "6206-7", "6082-2", "6075-6",
                          "6095-4"), {"check_up": 0.025, "procedure": 0.02}),
    Panel("spirometry", ("19926-5",), {"check_up": 0.05, "follow_up": 0.05, "procedure": 0.08},
          boost={"smoking": 5.0}),
    Panel("bone_density", ("38265-5",), {"procedure": 0.2, "check_up": 0.06}, age=(50, 200),
          sex_factor=(1.0, 0.35), boost={"osteoporosis": 6.0}),
    Panel("eye_exam", ("79893-4", "79892-6", "71491-5", "71490-7", "79818-1", "79819-9",
                       "413078003", "413077008"), {"check_up": 0.12, "procedure": 0.1},
          needs="diabetes"),
    Panel("dialysis", ("74006-8",), {"procedure": 0.15, "inpatient": 0.1}, age=(40, 200),
          needs="kidney_disease"),
    Panel("pain_interference", ("38208-5", "91145-3", "91146-1", "75893-8"),
          {"problem": 0.04, "follow_up": 0.04, "hospice": 0.5}, sex_factor=(1.1, 0.95)),
    Panel("drug_screen", ("65750-2",), {"emergency": 0.08, "wellness": 0.01},
          sex_factor=(0.85, 1.15), boost={"smoking": 2.0}),
    Panel("magnesium", ("19123-9", "21377-7"), {"inpatient": 0.1, "emergency": 0.02}),
    Panel("stool_blood", ("57905-2",), {"check_up": 0.03, "wellness": 0.01}, age=(50, 75)),
    Panel("colonoscopy_finding", ("33756-8",), {"procedure": 0.04}, age=(50, 200)),
    Panel("sepsis_screen", ("59032-3", "88262-1", "3173-2", "8478-0"), {"inpatient": 0.05,
                                                                      "emergency": 0.01}),
    Panel("peds_growth", ("59576-9",), {"well_child": 1.0, "wellness": 1.0}, age=(2, 20)),
    Panel("infant_growth", ("77606-2", "9843-4", "8289-1"), {"well_child": 1.0}, age=(0, 3)),
    Panel("surgery_status", ("X9999-1", "X9999-2"), {"procedure": 0.03, "inpatient": 0.05}),
    Panel("oxygen", ("2713-6", "44963-7", "71425-3"), {"emergency": 0.015, "inpatient": 0.03}),
    Panel("cause_of_death", ("69453-9",), {"death": 1.0}),
)
