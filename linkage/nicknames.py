"""Common US English nicknames and short forms, mapped to the formal given name.

Written for this project from general knowledge of US naming; the list is deliberately
short (frequent forms only). A name that is both a nickname and a formal name in its own
right (e.g. "kate") maps to one formal name; the comparison keeps the name as written too,
so an exact match on the written name still counts fully.
"""

from __future__ import annotations

from types import MappingProxyType

_FORMAL_TO_NICKNAMES: dict[str, tuple[str, ...]] = {
    "abigail": ("abby", "abbie", "gail"),
    "alexander": ("alex", "xander", "al"),
    "alexandra": ("alexa", "lexi", "sandra", "sasha"),
    "andrew": ("andy", "drew"),
    "angela": ("angie",),
    "anthony": ("tony",),
    "barbara": ("barb", "babs"),
    "benjamin": ("ben", "benny", "benji"),
    "catherine": ("cathy", "cat"),
    "charles": ("charlie", "chuck", "chaz"),
    "christina": ("chris", "tina", "christy"),
    "christopher": ("topher", "kit"),
    "cynthia": ("cindy",),
    "daniel": ("dan", "danny"),
    "deborah": ("deb", "debbie", "debra"),
    "donald": ("don", "donnie"),
    "dorothy": ("dot", "dottie"),
    "edward": ("ed", "eddie", "ted", "ned"),
    "elizabeth": ("liz", "lizzie", "beth", "betty", "eliza", "betsy", "libby"),
    "emily": ("emmy", "em"),
    "frederick": ("fred", "freddie"),
    "gabriel": ("gabe",),
    "gregory": ("greg",),
    "jacob": ("jake",),
    "james": ("jim", "jimmy", "jamie"),
    "jennifer": ("jen", "jenny", "jenn"),
    "jessica": ("jess", "jessie"),
    "jonathan": ("jon", "jonny"),
    "joseph": ("joe", "joey"),
    "joshua": ("josh",),
    "judith": ("judy",),
    "katherine": ("kate", "katie", "kathy", "kat", "kay", "kathryn", "kitty"),
    "kenneth": ("ken", "kenny"),
    "kimberly": ("kim",),
    "lawrence": ("larry",),
    "margaret": ("maggie", "meg", "peggy", "marge", "margie", "greta"),
    "matthew": ("matt", "matty"),
    "michael": ("mike", "mikey", "mick"),
    "michelle": ("shelly", "shelley"),
    "nathaniel": ("nate", "nat", "nathan"),
    "nicholas": ("nick", "nicky", "nico"),
    "olivia": ("liv", "livvy"),
    "pamela": ("pam",),
    "patricia": ("pat", "patty", "trish", "tricia"),
    "patrick": ("paddy",),
    "rebecca": ("becky", "becca"),
    "richard": ("rick", "ricky", "dick", "rich", "richie"),
    "robert": ("bob", "bobby", "rob", "robbie", "bert"),
    "ronald": ("ron", "ronnie"),
    "samantha": ("sam", "sammy"),
    "samuel": ("sammie",),
    "stephanie": ("steph",),
    "stephen": ("steve", "stevie", "steven"),
    "susan": ("sue", "susie", "suzy"),
    "theodore": ("theo", "teddy"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "valerie": ("val",),
    "victoria": ("vicky", "tori"),
    "william": ("will", "bill", "billy", "willie", "liam"),
    "zachary": ("zach", "zack"),
}

FORMAL_NAMES = MappingProxyType(_FORMAL_TO_NICKNAMES)
"""Formal given name -> its common nicknames (lower case, ASCII)."""

NICKNAME_TO_FORMAL = MappingProxyType({
    nickname: formal
    for formal, nicknames in _FORMAL_TO_NICKNAMES.items()
    for nickname in nicknames
})
"""Nickname -> formal given name (lower case, ASCII)."""


def formal_given_name(name: str) -> str:
    """The formal form of a normalised given name (the name itself if none is known)."""
    return NICKNAME_TO_FORMAL.get(name, name)
