import datetime as dt
import threading

import pytest
from django.db import connection

from cpm.base.errors import DomainValidationError
from programs import services
from programs.models import Season
from tests.actors import TEST_ACTOR
from tests.factories.programs import ProgramFactory


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_seasons_one_wins(now):
    """The program row lock serialises season writes: of two overlapping seasons created at once, one is refused."""
    program = ProgramFactory(status="draft")
    barrier = threading.Barrier(2)
    outcomes = []

    def create(name, start, end):
        try:
            barrier.wait()
            services.season_create(program=program, data={"name": name, "start_date": start, "end_date": end},
                                   now=now, actor=TEST_ACTOR)
            outcomes.append("created")
        except DomainValidationError as exc:
            outcomes.append(next(iter(exc.errors.values()))[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=("A", dt.date(2026, 6, 1), dt.date(2026, 8, 31))),
               threading.Thread(target=create, args=("B", dt.date(2026, 8, 1), dt.date(2026, 9, 30)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes)[1] == "created" and "overlaps season" in sorted(outcomes)[0]
    assert Season.objects.filter(program=program).count() == 1
