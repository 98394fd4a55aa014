"""Ids and paging typed with digits that are not ASCII (superscript '\u00b2': ``str.isdigit`` says yes, ``int``
refuses it) answered HTTP 500; now 400 (paging) or 404 (an id naming nothing) (QA, issue 15)."""


def test_openadr_ids_and_paging_in_superscript_digits_are_client_errors(world):
    token = world.token("bl")
    for path, status in (("/programs?skip=%C2%B2", 400), ("/programs?limit=%C2%B2", 400),
                         ("/programs/%C2%B2", 404), ("/events/%C2%B2", 404), ("/3.1/programs/%C2%B2", 404)):
        response = world.http("GET", path, token)
        assert response.status_code == status, (path, response.status_code, response.text[:200])
