"""Run by ``test_replica_router`` in a process of its own, with ``DATABASE_URL`` (the primary) and
``DATABASE_REPLICA_URL`` (the replica, a copy of the migrated primary) set: prints one line per check as JSON."""

from __future__ import annotations

import json
import os


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpm.settings")
    django.setup()
    from django.db import transaction

    from cpm.csr.selectors import customer_search
    from enrollments.models import Customer

    Customer.objects.create(cis_person_id="P-1", first_name="Pat", last_name="Primaryson")
    # the replica has a row the primary lacks: whoever reads it read the replica
    Customer.objects.using("replica").create(pk=1000, cis_person_id="R-1", first_name="Robin",
                                          last_name="Replicason")
    marked = [c.last_name for c in customer_search(query="R-1")] + [c.last_name for c in customer_search(query="P-1")]
    plain = list(Customer.objects.order_by("cis_person_id").values_list("last_name", flat=True))
    with transaction.atomic():
        in_transaction = [c.last_name for c in customer_search(query="P-1")]
    saved = Customer.objects.using("replica").get(cis_person_id="R-1")
    saved.first_name = "Robyn"
    saved.save()  # a write goes to the primary, whatever the row was read from
    print(json.dumps({"marked": marked, "plain": plain, "in_transaction": in_transaction,
                      "primary_after_save": list(Customer.objects.using("default").order_by("cis_person_id")
                                                 .values_list("cis_person_id", "first_name"))}))


if __name__ == "__main__":
    main()
