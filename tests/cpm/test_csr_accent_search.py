"""CSR search by name without accents and case: a CSR types what they hear on the phone (``elodie`` for Élodie,
``nunez`` for Núñez), and finds the same customers on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.csr.selectors import customer_search
from tests.cpm.test_csr_issue17 import csr  # noqa: F401  (fixture)
from tests.factories.enrollments import CustomerFactory
from tests.plans import plan_without_seq_scans

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return {
        "elodie": CustomerFactory(first_name="Élodie", last_name="Lefèvre"),
        "nunez": CustomerFactory(first_name="Iñaki", last_name="Núñez"),
        "bjork": CustomerFactory(first_name="Søren", last_name="Øster-Łukasz"),
        "other": CustomerFactory(first_name="Eloise", last_name="Nunn"),
    }


@pytest.mark.parametrize(("query", "who"), [
    ("elodie", "elodie"),  # no accent typed
    ("ÉLODIE", "elodie"),  # capitals with the accent
    ("élodie", "elodie"),  # lower-case accent (SQLite's LIKE folds only a-z)
    ("ELODIE", "elodie"),
    ("lefevre", "elodie"),
    ("Elodie Lefevre", "elodie"),  # "first last"
    ("elo lef", "elodie"),
    ("nunez", "nunez"),
    ("Nuñez", "nunez"),  # half the accents
    ("NÚÑEZ", "nunez"),
    ("inaki nunez", "nunez"),
    ("soren", "bjork"),  # ø and ł do not decompose in Unicode: folded all the same
    ("oster-lukasz", "bjork"),
])
def test_search_ignores_accents_and_case(csr, people, query, who):  # noqa: F811
    body = csr.get("/csr/", {"q": query}).content.decode()
    assert f"/csr/customers/{people[who].pk}/" in body, query
    found = {c.pk for c in customer_search(query=query)}
    assert people[who].pk in found, query


def test_folding_does_not_widen_the_match(people):
    assert {c.pk for c in customer_search(query="elod")} == {people["elodie"].pk}
    assert {c.pk for c in customer_search(query="nun")} == {people["nunez"].pk, people["other"].pk}
    assert {c.pk for c in customer_search(query="nune")} == {people["nunez"].pk}
    assert {c.pk for c in customer_search(query="Eloise Nunez")} == set()


def test_a_renamed_customer_is_found_by_the_new_name_only(people):
    person = people["elodie"]
    person.last_name = "Dupré"
    person.save()
    assert {c.pk for c in customer_search(query="dupre")} == {person.pk}
    assert customer_search(query="lefevre") == []


def test_search_queries_stay_constant_whatever_the_matches(people):
    def count(query, found):
        with CaptureQueriesContext(connection) as ctx:
            assert len(customer_search(query=query)) == found, query
        return len(ctx.captured_queries)

    one = count("nunez", 1)
    assert count("elodie", 1) == one
    assert count("nun", 2) == one
    CustomerFactory.create_batch(5, first_name="Ñoño", last_name="Núñez")
    assert count("nunez", 6) == one
    assert count("ÑOÑO", 5) == one
    assert count("zzzz", 0) <= one  # nothing found: no accounts to read


@pytest.mark.parametrize("query", ["\u0301\u0301", "\u0301 \u0301", "\u0308\u0301 \u0300"])
def test_a_query_of_only_accents_finds_no_one(people, query):
    assert customer_search(query=query) == []


@pytest.mark.postgres
@pytest.mark.parametrize("query", ["nunez", "Elodie Lef"])
def test_the_name_probe_is_answered_from_the_name_key_indexes(people, query):
    """With sequential scans off, the planner answers the search's name probe from the pattern-ops indexes of the
    keys (a missing or unusable index would leave a Seq Scan)."""
    with CaptureQueriesContext(connection) as ctx:
        customer_search(query=query)
    [probe] = [q["sql"] for q in ctx.captured_queries if "name_key\"::text LIKE" in q["sql"]]
    plan = plan_without_seq_scans(probe)
    assert "customer_last_name_key_idx" in plan and "customer_first_name_key_idx" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_last_name_of_several_words_is_found_by_its_beginning(people):
    person = CustomerFactory(first_name="Martin", last_name="Van Bürén")
    for query in ["van buren", "VAN BU", "Van  Bürén"]:
        assert {c.pk for c in customer_search(query=query)} == {person.pk}, query
