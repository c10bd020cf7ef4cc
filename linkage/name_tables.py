"""Small name frequency tables for the synthetic population.

Surnames: the 100 most frequent surnames of the 2010 US Census surname file (a US
government work, public domain), with their counts rounded to the nearest thousand.
Given names: frequent US given names of people born 1970-2005 as listed by the Social
Security Administration's baby-name files (public domain), with relative weights rounded
to two figures. Both are written out here by hand from those sources: enough for realistic
collisions on common names; `synthetic` adds a long tail of generated surnames because the
real top 100 cover only about a fifth of the population.
"""

from __future__ import annotations

SURNAMES: tuple[tuple[str, int], ...] = (
    ("Smith", 2443), ("Johnson", 1933), ("Williams", 1625), ("Brown", 1437),
    ("Jones", 1425), ("Garcia", 1166), ("Miller", 1161), ("Davis", 1116),
    ("Rodriguez", 1095), ("Martinez", 1060), ("Hernandez", 1043), ("Lopez", 875),
    ("Gonzalez", 841), ("Wilson", 802), ("Anderson", 784), ("Thomas", 756),
    ("Taylor", 751), ("Moore", 724), ("Jackson", 708), ("Martin", 703), ("Lee", 693),
    ("Perez", 682), ("Thompson", 665), ("White", 660), ("Harris", 624), ("Sanchez", 613),
    ("Clark", 563), ("Ramirez", 557), ("Lewis", 532), ("Robinson", 530), ("Walker", 523),
    ("Young", 484), ("Allen", 483), ("King", 465), ("Wright", 459), ("Scott", 440),
    ("Torres", 438), ("Nguyen", 438), ("Hill", 435), ("Flores", 434), ("Green", 430),
    ("Adams", 428), ("Nelson", 425), ("Baker", 420), ("Hall", 407), ("Rivera", 391),
    ("Campbell", 386), ("Mitchell", 384), ("Carter", 377), ("Roberts", 377),
    ("Gomez", 366), ("Phillips", 351), ("Evans", 342), ("Turner", 335), ("Diaz", 333),
    ("Parker", 329), ("Cruz", 317), ("Edwards", 317), ("Collins", 312), ("Reyes", 311),
    ("Stewart", 293), ("Morris", 292), ("Morales", 290), ("Murphy", 288), ("Cook", 281),
    ("Rogers", 281), ("Gutierrez", 273), ("Ortiz", 272), ("Morgan", 268), ("Cooper", 265),
    ("Peterson", 264), ("Bailey", 261), ("Reed", 261), ("Kelly", 260), ("Howard", 255),
    ("Ramos", 254), ("Kim", 254), ("Cox", 254), ("Ward", 253), ("Richardson", 250),
    ("Watson", 242), ("Brooks", 240), ("Chavez", 239), ("Wood", 238), ("James", 237),
    ("Bennett", 235), ("Gray", 233), ("Mendoza", 232), ("Ruiz", 232), ("Hughes", 229),
    ("Price", 228), ("Alvarez", 226), ("Castillo", 225), ("Sanders", 224), ("Patel", 223),
    ("Myers", 223), ("Long", 221), ("Ross", 220), ("Foster", 217), ("Jimenez", 217),
)

FEMALE_GIVEN: tuple[tuple[str, int], ...] = (
    ("Jennifer", 100), ("Jessica", 95), ("Ashley", 90), ("Amanda", 75), ("Sarah", 70),
    ("Stephanie", 60), ("Melissa", 58), ("Nicole", 55), ("Elizabeth", 55), ("Heather", 45),
    ("Michelle", 45), ("Emily", 45), ("Amy", 40), ("Kimberly", 40), ("Angela", 38),
    ("Rebecca", 35), ("Megan", 35), ("Lauren", 34), ("Rachel", 33), ("Samantha", 33),
    ("Katherine", 30), ("Christina", 30), ("Laura", 30), ("Brittany", 30), ("Danielle", 28),
    ("Hannah", 28), ("Kayla", 27), ("Maria", 27), ("Crystal", 22), ("Tiffany", 22),
    ("Andrea", 21), ("Erin", 20), ("Amber", 20), ("Mary", 20), ("Kelly", 19),
    ("Patricia", 15), ("Anna", 18), ("Victoria", 17), ("Alexandra", 15), ("Courtney", 17),
    ("Vanessa", 14), ("Natalie", 14), ("Monica", 12), ("Alyssa", 16), ("Erica", 13),
    ("Jasmine", 14), ("Margaret", 10), ("Olivia", 13), ("Abigail", 12), ("Madison", 15),
    ("Brianna", 12), ("Alexis", 13), ("Gabriela", 8), ("Ana", 8), ("Guadalupe", 6),
    ("Latoya", 6), ("Keisha", 5), ("Aaliyah", 6), ("Destiny", 8), ("Deborah", 6),
    ("Susan", 6), ("Barbara", 5), ("Cynthia", 6), ("Pamela", 5), ("Valerie", 6),
    ("Judith", 3), ("Dorothy", 3), ("Valeria", 5), ("Ximena", 3), ("Linh", 3), ("Mei", 3),
    ("Fatima", 3), ("Zoë", 3), ("Renée", 3), ("Chloé", 2),
)

MALE_GIVEN: tuple[tuple[str, int], ...] = (
    ("Michael", 100), ("Christopher", 85), ("Matthew", 75), ("Joshua", 70), ("David", 65),
    ("James", 62), ("Daniel", 60), ("Robert", 58), ("John", 56), ("Joseph", 52),
    ("Jason", 45), ("Justin", 42), ("Andrew", 42), ("Ryan", 40), ("William", 40),
    ("Brian", 36), ("Jonathan", 35), ("Brandon", 35), ("Nicholas", 33), ("Anthony", 33),
    ("Eric", 30), ("Adam", 25), ("Kevin", 28), ("Thomas", 27), ("Steven", 26),
    ("Timothy", 24), ("Richard", 22), ("Jeremy", 20), ("Jeffrey", 20), ("Kyle", 20),
    ("Benjamin", 20), ("Aaron", 18), ("Charles", 17), ("Mark", 17), ("Jacob", 20),
    ("Stephen", 14), ("Patrick", 14), ("Scott", 14), ("Nathan", 14), ("Paul", 12),
    ("Sean", 13), ("Travis", 10), ("Zachary", 14), ("Gregory", 10), ("Kenneth", 10),
    ("Jose", 15), ("Tyler", 18), ("Jesse", 9), ("Alexander", 14), ("Luis", 10),
    ("Carlos", 10), ("Juan", 10), ("Miguel", 8), ("Jamal", 5), ("Darnell", 4),
    ("DeShawn", 4), ("Minh", 3), ("Wei", 3), ("Ahmed", 3), ("Samuel", 12), ("Edward", 8),
    ("Donald", 6), ("Ronald", 6), ("Lawrence", 4), ("Frederick", 3), ("Theodore", 3),
    ("Gabriel", 8), ("José", 5), ("Andrés", 3), ("Nathaniel", 6), ("Douglas", 4),
)

STREET_NAMES: tuple[str, ...] = (
    "Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill",
    "Park", "Walnut", "Sunset", "Lincoln", "Jackson", "Church", "River", "Highland",
    "Franklin", "Willow", "Larkspur", "Meadow", "Forest", "Spring", "Madison", "Ridge",
    "Cherry", "Jefferson", "Prairie", "Birch", "Mill", "Center", "Union", "Chestnut",
    "Dogwood", "Grant", "Hickory", "Locust", "Monroe", "Orchard", "Sycamore",
)
STREET_TYPES: tuple[str, ...] = ("Street", "Avenue", "Road", "Drive", "Lane", "Court",
                                 "Boulevard", "Place", "Way", "Terrace")
