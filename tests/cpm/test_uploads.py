import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from cpm.base.uploads import validate_upload


def test_accepts_utf8_csv():
    validate_upload(SimpleUploadedFile("readings.csv", b"service_point_id,interval_start,kwh\nSP-1,x,1\n"))


@pytest.mark.parametrize(("name", "content", "kinds", "message"), [
    ("readings.csv", b"", ("csv",), "The file is empty."),
    ("readings.exe", b"MZ...", ("csv",), "Expected a CSV file (.csv, .txt)."),
    ("readings.csv", b"a,b\x00c", ("csv",), "The file is not text (it contains NUL bytes)."),
    ("readings.csv", b"a,b\n\xff\xfe,1\n", ("csv",), "The file is not UTF-8 text (line 2, byte 4)."),
    ("usage.csv", b"<feed/>", ("xml",), "Expected a XML file (.xml, .espi)."),
])
def test_refuses_bad_files_naming_the_problem(name, content, kinds, message):
    with pytest.raises(ValidationError) as exc:
        validate_upload(SimpleUploadedFile(name, content), kinds=kinds)
    assert exc.value.messages == [message]


def test_size_limit(settings):
    settings.CPM_MAX_UPLOAD_BYTES = 10
    with pytest.raises(ValidationError) as exc:
        validate_upload(SimpleUploadedFile("big.csv", b"x" * 11))
    assert exc.value.messages == ["The file is 11 bytes; the limit is 10 bytes."]


@pytest.mark.django_db
def test_meter_upload_endpoint_refuses_oversized_file(admin_api, settings):
    settings.CPM_MAX_UPLOAD_BYTES = 20
    response = admin_api.post("/api/v1/meter-data-loads/upload/",
                              {"file": SimpleUploadedFile("r.csv", b"service_point_id,interval_start,kwh\n")},
                              format="multipart")
    assert response.status_code == 400
    assert response.json()["file"] == ["The file is 36 bytes; the limit is 20 bytes."]


def test_a_bad_byte_anywhere_is_refused_naming_its_line(monkeypatch):
    import cpm.base.uploads as uploads

    monkeypatch.setattr(uploads, "_BLOCK", 7)  # small blocks: characters cut at block boundaries are fine
    good = "a,b\n" + "é,€\n" * 40
    validate_upload(SimpleUploadedFile("r.csv", good.encode()))
    bad = good.encode() + b"x,\xe9\n"
    with pytest.raises(ValidationError) as exc:
        validate_upload(SimpleUploadedFile("r.csv", bad))
    assert exc.value.messages == [f"The file is not UTF-8 text (line 42, byte {len(good.encode()) + 2})."]


def test_a_bad_byte_after_64_kib_is_refused_and_text_false_leaves_it_to_the_importer():
    content = b"a,b\n" + b"1,2\n" * 20000 + b"\xff,3\n"
    upload = SimpleUploadedFile("r.csv", content)
    with pytest.raises(ValidationError) as exc:
        validate_upload(upload)
    assert exc.value.messages == [f"The file is not UTF-8 text (line 20002, byte {len(content) - 4})."]
    assert upload.tell() == 0
    validate_upload(upload, text=False)
