"""Country profiles: what makes a French hospital's records differ from an American one's.

Three kinds of difference matter to a federated experiment, and each is here:
- population health: prevalence of the chronic conditions the generator models;
- coding habits: which lab variants a country's labs report (serum vs whole blood), and
  whether US social-needs surveys (PRAPARE) are collected at all;
- identity: payers, names and address formats, so records look local.

Prevalences are rough adult figures (WHO / national surveys, rounded); what matters here is
that they differ between centres in the direction real data does, not the third digit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    """Health and coding profile of one country."""

    code: str
    name: str
    # Adult prevalence at age 60 of each chronic condition (scaled by age in the cohort).
    hypertension: float
    diabetes: float
    kidney_disease: float
    obesity: float
    smoking: float
    # Coding habits.
    serum_labs: float  # share of chemistry panels reported on serum/plasma rather than blood
    social_surveys: float  # chance a wellness visit records the PRAPARE social-needs survey
    mental_screens: float  # chance a wellness visit records PHQ-2 / GAD-7 screens
    encounter_rate: float  # multiplier on non-wellness visits (access to care)
    payers: tuple[str, ...]
    first_names_f: tuple[str, ...]
    first_names_m: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    lat_lon: tuple[float, float]


COUNTRIES: dict[str, Country] = {
    "us": Country(
        code="us",
        name="United States",
        hypertension=0.45,
        diabetes=0.17,
        kidney_disease=0.11,
        obesity=0.40,
        smoking=0.14,
        serum_labs=0.15,
        social_surveys=0.85,
        mental_screens=0.80,
        encounter_rate=1.0,
        payers=("Medicare", "Medicaid", "Blue Cross Blue Shield", "UnitedHealthcare", "Aetna",
                "Cigna Health", "Humana", "Anthem", "Dual Eligible", "NO_INSURANCE"),
        first_names_f=("Emma", "Olivia", "Ava", "Mia", "Sophia", "Abigail", "Emily", "Madison",
                       "Aubrey", "Ester", "Leonor", "Grace", "Chloe", "Lily"),
        first_names_m=("Liam", "Noah", "James", "Lucas", "Mason", "Ethan", "Logan", "Jacob",
                       "Quinton", "Moises", "Jorge", "Caleb", "Owen", "Wyatt"),
        last_names=("Smith", "Johnson", "Reinger", "Brown", "Garcia", "Miller", "Davis",
                    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson"),
        streets=("Main Street", "Grimes Gardens", "Reichert Vale", "Hills Branch", "Haag Rest",
                 "Quigley Junction", "Washington Street", "Elm Avenue"),
        lat_lon=(42.36, -71.06),
    ),
    "fr": Country(
        code="fr",
        name="France",
        hypertension=0.32,
        diabetes=0.09,
        kidney_disease=0.10,
        obesity=0.17,
        smoking=0.25,
        serum_labs=0.85,
        social_surveys=0.0,
        mental_screens=0.25,
        encounter_rate=1.15,
        payers=("Assurance Maladie", "Mutuelle Generale", "Harmonie Mutuelle", "MGEN",
                "Complementaire Sante Solidaire", "NO_INSURANCE"),
        first_names_f=("Camille", "Lea", "Manon", "Chloe", "Ines", "Jade", "Louise", "Alice",
                       "Juliette", "Margaux", "Claire", "Elise"),
        first_names_m=("Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Thomas",
                       "Nathan", "Raphael", "Theo", "Antoine", "Mathis"),
        last_names=("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit",
                    "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre"),
        streets=("Rue de la Republique", "Avenue Jean Jaures", "Rue Victor Hugo",
                 "Cours Lafayette", "Quai Saint-Antoine", "Rue Garibaldi"),
        lat_lon=(45.76, 4.84),
    ),
    "gb": Country(
        code="gb",
        name="United Kingdom",
        hypertension=0.30,
        diabetes=0.08,
        kidney_disease=0.13,
        obesity=0.28,
        smoking=0.13,
        serum_labs=0.95,
        social_surveys=0.0,
        mental_screens=0.55,
        encounter_rate=0.85,
        payers=("NHS England", "Bupa", "AXA Health", "Aviva", "Vitality Health",
                "NO_INSURANCE"),
        first_names_f=("Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence",
                       "Mia", "Willow", "Rosie", "Sophia"),
        first_names_m=("Muhammad", "Noah", "Oliver", "George", "Arthur", "Leo", "Harry",
                       "Oscar", "Archie", "Henry", "Theodore", "Freddie"),
        last_names=("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson",
                    "Davies", "Patel", "Robinson", "Wright", "Thompson", "Evans"),
        streets=("High Street", "Station Road", "Church Lane", "Victoria Road", "Park Road",
                 "Kings Road", "Queens Road"),
        lat_lon=(51.52, -0.13),
    ),
    "de": Country(
        code="de",
        name="Germany",
        hypertension=0.32,
        diabetes=0.10,
        kidney_disease=0.11,
        obesity=0.24,
        smoking=0.22,
        serum_labs=0.90,
        social_surveys=0.0,
        mental_screens=0.35,
        encounter_rate=1.3,
        payers=("AOK", "Techniker Krankenkasse", "Barmer", "DAK-Gesundheit",
                "Private Krankenversicherung", "NO_INSURANCE"),
        first_names_f=("Emilia", "Hannah", "Emma", "Sofia", "Mia", "Lina", "Mila", "Ella",
                       "Clara", "Lea", "Marie", "Anna"),
        first_names_m=("Noah", "Matteo", "Elias", "Luca", "Leon", "Finn", "Paul", "Ben",
                       "Felix", "Henry", "Emil", "Theo"),
        last_names=("Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner",
                    "Becker", "Schulz", "Hoffmann", "Koch", "Richter", "Klein"),
        streets=("Hauptstrasse", "Schulstrasse", "Gartenstrasse", "Bahnhofstrasse",
                 "Dorfstrasse", "Bergstrasse"),
        lat_lon=(52.52, 13.40),
    ),
}
