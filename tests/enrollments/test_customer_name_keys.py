"""The CSR search keys of customers' names (``Customer.first_name_key`` / ``last_name_key``) stay right on every
path that writes a name: the upsert service (admin, CIS import, demo), save, the queryset's bulk writes, and the
data migration that fills them for existing customers."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import F

from enrollments import services
from enrollments.imports import import_cis
from enrollments.models import NAME_KEY_LENGTH, Customer, name_key
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import CustomerFactory

pytestmark = pytest.mark.django_db


def keys(customer_id):
    return tuple(Customer.objects.filter(pk=customer_id).values_list("first_name_key", "last_name_key").get())


def test_name_key_folds_accents_case_and_cuts_at_the_column_size():
    assert name_key("Núñez") == name_key("NUNEZ") == "nunez"
    assert name_key("") == ""
    assert name_key("ß" * 200) == "s" * NAME_KEY_LENGTH  # ß is "ss": the key is cut, never too long to store


def test_upsert_writes_the_keys_and_an_update_rewrites_them(now):
    customer, outcome = services.customer_upsert(cis_person_id="PER-1", values={
        "first_name": "Élodie", "last_name": "Lefèvre"}, now=now, actor=TEST_ACTOR)
    assert outcome == "new" and keys(customer.pk) == ("elodie", "lefevre")
    _, outcome = services.customer_upsert(cis_person_id="PER-1", values={
        "first_name": "Élodie", "last_name": "Dupré"}, now=now, actor=TEST_ACTOR)
    assert outcome == "updated" and keys(customer.pk) == ("elodie", "dupre")
    _, outcome = services.customer_upsert(cis_person_id="PER-1", values={
        "first_name": "Élodie", "last_name": "Dupré"}, now=now, actor=TEST_ACTOR)
    assert outcome == "unchanged"


def test_the_keys_are_not_in_the_audit_trail(now):
    from cpm.models import AuditEntry

    customer, _ = services.customer_upsert(cis_person_id="PER-2", values={"last_name": "Núñez"}, now=now,
                                           actor=TEST_ACTOR)
    entry = AuditEntry.objects.get(object_type="enrollments.customer", object_id=str(customer.pk))
    assert "last_name_key" not in entry.changes and entry.changes["last_name"] == "Núñez"


def test_cis_import_writes_the_keys(now):
    import_cis("cis_person_id,first_name,last_name\nPER-7,Iñaki,Núñez\nPER-8,,ØSTER\n", kind="customers", now=now,
               actor=TEST_ACTOR)
    assert keys(Customer.objects.get(cis_person_id="PER-7").pk) == ("inaki", "nunez")
    assert keys(Customer.objects.get(cis_person_id="PER-8").pk) == ("", "oster")
    import_cis("cis_person_id,first_name,last_name\nPER-7,Iñaki,Núñez García\n", kind="customers", now=now,
               actor=TEST_ACTOR)
    assert keys(Customer.objects.get(cis_person_id="PER-7").pk) == ("inaki", "nunez garcia")


def test_save_with_update_fields_saves_the_key_of_the_name():
    customer = CustomerFactory(first_name="Ana", last_name="Lopez")
    customer.last_name = "López-Ñúñez"
    customer.save(update_fields=["last_name"])
    assert keys(customer.pk) == ("ana", "lopez-nunez")


def test_bulk_writes_keep_the_keys():
    made = Customer.objects.bulk_create([Customer(cis_person_id="B-1", first_name="Zoë", last_name="Brontë")])
    assert keys(made[0].pk) == ("zoe", "bronte")
    made[0].first_name = "Chloé"
    Customer.objects.bulk_update(made, ["first_name"])
    assert keys(made[0].pk) == ("chloe", "bronte")
    Customer.objects.filter(pk=made[0].pk).update(last_name="Ångström")
    assert keys(made[0].pk) == ("chloe", "angstrom")
    Customer.objects.bulk_create([Customer(cis_person_id="B-1", first_name="Chloé", last_name="Łódź")],
                                 update_conflicts=True, unique_fields=["cis_person_id"], update_fields=["last_name"])
    assert keys(made[0].pk) == ("chloe", "lodz")


def test_an_update_by_expression_is_refused_naming_the_field():
    customer = CustomerFactory(first_name="Ana", last_name="Lopez")
    with pytest.raises(TypeError, match="last_name"):
        Customer.objects.filter(pk=customer.pk).update(last_name=F("first_name"))
    assert Customer.objects.get(pk=customer.pk).last_name == "Lopez"


def test_the_migration_fills_the_keys_of_existing_customers(monkeypatch):
    migration = importlib.import_module("enrollments.migrations.0006_customer_name_keys")
    monkeypatch.setattr(migration, "BATCH", 2)  # several batches
    people = [CustomerFactory(first_name=f, last_name=last) for f, last in
              [("Élodie", "Lefèvre"), ("Iñaki", "Núñez"), ("", "Øster"), ("Ana", "Lopez"), ("Zoë", "Brontë")]]
    Customer.objects.update(first_name_key="", last_name_key="")  # as they were before the migration
    migration.fill_name_keys(apps, SimpleNamespace(connection=connection))
    assert [keys(p.pk) for p in people] == [("elodie", "lefevre"), ("inaki", "nunez"), ("", "oster"),
                                            ("ana", "lopez"), ("zoe", "bronte")]
    migration.fill_name_keys(apps, SimpleNamespace(connection=connection))  # again: the same keys
    assert [keys(p.pk) for p in people][1] == ("inaki", "nunez")
