"""Issue 17: qualification questions set up without JSON. Choices one per line; qualifying answers ticked from the
allowed values (yes / no, or the question's choices); a number question's range as a minimum and a maximum; stored
as the services and ``rules.check_answers`` take them; refusals in words naming the field."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from programs import rules
from programs.models import QualificationQuestion
from tests.factories.programs import ProgramFactory, QuestionFactory

from .test_admin import _program_post

pytestmark = pytest.mark.django_db
ADD = "/admin/programs/qualificationquestion/add/"


def _post(client, program, **fields):
    data = {"program": program.pk, "code": "heating", "position": "0", "text": "How is the home heated?",
            "answer_type": "choice", "required": "on", **fields}
    return client.post(ADD, data)


def _ticked(html: str, prefix: str = "") -> dict[str, bool]:
    name = f"{prefix}qualifying_answers"
    return {m.group(1): "checked" in m.group(0) for m in
            re.finditer(rf'<input type="checkbox" name="{name}" value="([^"]*)"[^>]*>', html)}


def test_the_program_page_shows_questions_as_lines_and_ticks(admin_client):
    program = ProgramFactory(status="draft")
    QuestionFactory(program=program, code="owner", answer_type="boolean", qualifying_answers=[True])
    QuestionFactory(program=program, code="heating", answer_type="choice", choices=["Gas", "Electric heat pump"],
                    qualifying_answers=["Electric heat pump"])
    QuestionFactory(program=program, code="people", answer_type="number", qualifying_answers={"min": 1, "max": 4})
    html = unescape(admin_client.get(reverse("admin:programs_program_change", args=[program.pk])).content.decode())
    assert "[]" not in re.sub(r"<script.*?</script>", "", html, flags=re.S).split("QUALIFICATION", 1)[-1]
    assert not re.search(r'<textarea name="questions-\d-qualifying_answers"', html)
    assert _ticked(html, "questions-0-") == {"yes": True, "no": False}
    assert _ticked(html, "questions-1-") == {"yes": False, "no": False, "Gas": False, "Electric heat pump": True}
    assert re.search(r'<textarea name="questions-1-choices"[^>]*>\nGas\nElectric heat pump</textarea>', html)
    assert 'name="questions-2-qualifying_min" value="1"' in html
    assert 'name="questions-2-qualifying_max" value="4"' in html
    assert "one allowed answer per line" in html


def test_a_choice_question_from_lines_and_a_tick(admin_client):
    program = ProgramFactory(status="draft")
    response = _post(admin_client, program, choices="Gas\r\n Electric heat pump \r\n\r\nOil",
                     qualifying_answers=["Electric heat pump"])
    assert response.status_code == 302, unescape(response.content.decode())[-3000:]
    q = QualificationQuestion.objects.get()
    assert (q.choices, q.qualifying_answers) == (["Gas", "Electric heat pump", "Oil"], ["Electric heat pump"])
    assert rules.check_answers([q], {"heating": "Gas"})[0].code == "answer_not_qualifying"
    assert rules.check_answers([q], {"heating": "Electric heat pump"}) == []


def test_yes_no_and_number_questions(admin_client):
    program = ProgramFactory(status="draft")
    assert _post(admin_client, program, code="owner", answer_type="boolean",
                 qualifying_answers=["yes"]).status_code == 302
    assert _post(admin_client, program, code="people", answer_type="number", qualifying_min="1",
                 qualifying_max="4.5").status_code == 302
    assert _post(admin_client, program, code="any", answer_type="number").status_code == 302
    stored = dict(QualificationQuestion.objects.values_list("code", "qualifying_answers"))
    assert stored == {"owner": [True], "people": {"min": 1, "max": 4.5}, "any": []}
    people = QualificationQuestion.objects.get(code="people")
    assert rules.check_answers([people], {"people": "5"})[0].code == "answer_not_qualifying"
    assert rules.check_answers([people], {"people": "4.5"}) == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"choices": "Gas\nOil", "qualifying_answers": ["Coal"]}, "Coal is not one of the answers listed here."),
    ({"choices": ""}, "A choice question needs a list of choices."),
    ({"answer_type": "boolean", "qualifying_min": "1"}, "Only a number question has a qualifying range."),
    ({"answer_type": "boolean", "choices": "", "qualifying_answers": ["yes", "no"]}, None),
    ({"answer_type": "number", "choices": "", "qualifying_answers": ["yes"]},
     "A number question qualifies by a range: give a minimum and a maximum instead of ticking answers."),
    ({"answer_type": "number", "choices": "", "qualifying_min": "5", "qualifying_max": "2"},
     "The maximum must be at least the minimum."),
    ({"answer_type": "boolean", "choices": "", "qualifying_answers": ["Gas"]}, "Gas is not one of the answers"),
])
def test_refusals_in_words(admin_client, fields, message):
    program = ProgramFactory(status="draft")
    response = _post(admin_client, program, **fields)
    if message is None:
        assert response.status_code == 302
        assert QualificationQuestion.objects.get().qualifying_answers == [True, False]
        return
    assert response.status_code == 200
    assert message in unescape(response.content.decode())
    assert not QualificationQuestion.objects.exists()


def test_a_question_added_inline_with_the_program(admin_client):
    response = admin_client.post(reverse("admin:programs_program_add"), _program_post(**{
        "questions-TOTAL_FORMS": "1", "questions-0-code": "heating", "questions-0-position": "0",
        "questions-0-text": "How is the home heated?", "questions-0-answer_type": "choice",
        "questions-0-required": "on", "questions-0-choices": "Gas\nElectric heat pump",
        "questions-0-qualifying_answers": ["Electric heat pump"]}))
    assert response.status_code == 302, unescape(response.content.decode())[-3000:]
    q = QualificationQuestion.objects.get()
    assert (q.program.code, q.choices, q.qualifying_answers) == ("admin-made", ["Gas", "Electric heat pump"],
                                                                ["Electric heat pump"])


def test_changing_only_the_range_is_saved(admin_client):
    program = ProgramFactory(status="draft")
    q = QuestionFactory(program=program, code="people", answer_type="number", qualifying_answers={"min": 1, "max": 4})
    url = f"/admin/programs/qualificationquestion/{q.pk}/change/"
    response = admin_client.post(url, {"code": "people", "position": "0", "text": q.text, "answer_type": "number",
                                       "required": "on", "choices": "", "qualifying_min": "1",
                                       "qualifying_max": "6"})
    assert response.status_code == 302, unescape(response.content.decode())[-3000:]
    q.refresh_from_db()
    assert q.qualifying_answers == {"min": 1, "max": 6}


def test_question_list_constant_queries(admin_client):
    url = "/admin/programs/qualificationquestion/"
    QuestionFactory()
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(url).status_code == 200
    for i in range(8):
        QuestionFactory(code=f"q{i}")
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many.captured_queries) == len(one.captured_queries)
