"""Hostile input (issue 18's fuzzing findings, one test each): exit 2 with one line naming the
field, no traceback, before anything is planned or paid. In-process, no flow started."""

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cli.main import main
from tasks.input_files import MAX_JSON_DEPTH
from tasks.manifest import read_manifest

FOX = ["--prompt", "A fox in snow", "--resolution", "720p"]


def one_line_exit_2(capsys, argv: list[str], field: str) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1 and lines[0].startswith(f"reelflow: {field}"), lines
    return lines[0]


def request_file(tmp_path: Path, content: bytes) -> str:
    path = tmp_path / "request.json"
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("duration", ["inf", "-inf", "1e309", "nan"])
def test_a_non_finite_duration_is_refused(capsys, duration):
    said = one_line_exit_2(capsys, ["plan", *FOX, f"--duration={duration}"], "duration")
    assert "finite number" in said


@pytest.mark.parametrize("body", [b'{"prompt": "x", "duration": Infinity}',
                                  b'{"prompt": "x", "duration": NaN}'])
def test_json_infinity_and_nan_are_refused(capsys, tmp_path, body):
    said = one_line_exit_2(capsys, ["plan", request_file(tmp_path, body)], "request")
    assert "not a number JSON allows" in said


def test_deeply_nested_json_is_refused(capsys, tmp_path):
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        body = b'{"prompt": "x", "duration": 5, "scenes": ' + b"[" * depth + b"]" * depth + b"}"
        said = one_line_exit_2(capsys, ["plan", request_file(tmp_path, body)], "request")
        assert f"nested deeper than {MAX_JSON_DEPTH}" in said


def test_a_non_utf8_request_file_is_refused(capsys, tmp_path):
    said = one_line_exit_2(capsys, ["plan", request_file(tmp_path, b'{"prompt": "\xff\xfe"}')],
                           "request")
    assert "not UTF-8" in said


def test_an_oversized_request_file_is_refused(capsys, tmp_path):
    body = json.dumps({"prompt": "x " * 600_000, "duration": 5}).encode()
    said = one_line_exit_2(capsys, ["plan", request_file(tmp_path, body)], "request")
    assert "at most 1,048,576 are read" in said


def test_a_prompt_over_the_documented_maximum_is_refused(capsys):
    said = one_line_exit_2(capsys, ["plan", "--prompt", "fox " * 9000, "--duration", "5"],
                           "prompt")
    assert "at most 32000 characters" in said


@pytest.mark.parametrize(("argv", "field"), [
    (["report", "--budget", "NaN"], "budget"),
    (["report", "--budget", "inf"], "budget"),
    (["report", "--period", "99999999999d"], "period"),
    (["report", "--html", "/"], "html"),
    (["report", "--html", "/missing/folder/r.html"], "html"),
    (["prices", "--seconds", "inf"], "seconds"),
    (["prices", "--seconds", "nan"], "seconds"),
    (["plan", *FOX, "--duration", "5", "--volume", "²"], "volume"),
    (["crop", "examples/harbour-4x3.jpg", "--model", "kling-v3", "-o", "/missing/x.jpg"],
     "out"),
    (["crop", "examples/harbour-4x3.jpg", "--model", "kling-v3", "-o", "out.jpg", "--focus",
      "nan,0.5"], "focus"),
])
def test_command_arguments_are_checked_before_any_work(capsys, monkeypatch, tmp_path, argv,
                                                      field):
    monkeypatch.setenv("REELFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    one_line_exit_2(capsys, argv, field)


@pytest.mark.parametrize(("flags", "named"), [
    (["--wait", "later"], "wait"),
    (["--wait", "suspend"], "wait"),  # a local batch's own run cannot suspend: its chunks can
])
def test_a_batch_s_way_to_wait_is_checked_before_any_work(capsys, tmp_path, flags, named):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"prompt": "A cat", "duration": 5}) + "\n")
    one_line_exit_2(capsys, ["batch", str(manifest), *flags], named)


def test_a_batch_chunk_size_in_unicode_digits_is_refused(capsys, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"prompt": "A cat", "duration": 5}) + "\n")
    one_line_exit_2(capsys, ["batch", str(manifest), "--chunk-size", "²"], "chunk_size")


@pytest.mark.parametrize(("text", "field", "says"), [
    ("prompt,duration,duration\nA cat,5,10\n", "manifest", "duration more than once"),
    ("prompt,duration\nA cat,5,10\n", "row 1", "3 cells under a header of 2 columns"),
    ("prompt,duration,resolution\nA cat,5\n", "row 1", "2 cells under a header of 3"),
    ("prompt,duration\n" + "x" * 140_000 + ",5\n", "row 1", "field larger than field limit"),
])
def test_a_csv_manifest_is_strict(capsys, tmp_path, text, field, says):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    said = one_line_exit_2(capsys, ["batch", str(manifest)], field)
    assert says in said


@pytest.mark.parametrize("image", [7, ["a.jpg"]])
def test_a_non_string_image_in_jsonl_is_named(capsys, tmp_path, image):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"mode": "image", "prompt": "A cat", "duration": 5,
                                    "image": image}) + "\n")
    said = one_line_exit_2(capsys, ["batch", str(manifest)], "row 1: image")
    assert "valid string" in said


def test_a_manifest_image_path_may_not_leave_its_folder(capsys, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"not for you")
    manifest = folder / "m.jsonl"
    manifest.write_text(json.dumps({"mode": "image", "prompt": "A cat", "duration": 5,
                                    "image": "../secret.jpg"}) + "\n")
    said = one_line_exit_2(capsys, ["batch", str(manifest)], "row 1: image")
    assert "outside the manifest's folder" in said


def test_a_storyboard_row_s_scene_images_may_not_leave_the_manifest_s_folder(capsys,
                                                                              tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    Image.new("RGB", (640, 360), (200, 120, 40)).save(tmp_path / "secret.png")
    manifest = folder / "m.jsonl"
    manifest.write_text(json.dumps({"mode": "storyboard", "prompt": "A day", "scenes": [
        {"prompt": "Dawn", "duration": 4}, {"prompt": "Dusk", "duration": 4,
                                            "image": "../secret.png"}]}) + "\n")
    said = one_line_exit_2(capsys, ["batch", str(manifest)], "row 1: scenes.1.image")
    assert "outside the manifest's folder" in said


def test_an_absolute_image_path_needs_the_batch_to_allow_it(capsys, tmp_path):
    """A manifest from elsewhere must not read any file the worker can: an absolute path is
    refused unless the batch allows absolute paths, and then it is read as given."""
    folder, photos = tmp_path / "batch", tmp_path / "photos"
    folder.mkdir(), photos.mkdir()
    photo = photos / "cat.png"
    Image.new("RGB", (640, 360), (200, 120, 40)).save(photo)
    manifest = folder / "m.jsonl"
    manifest.write_text(json.dumps({"mode": "image", "prompt": "A cat", "duration": 5,
                                    "image": str(photo)}) + "\n")
    said = one_line_exit_2(capsys, ["batch", str(manifest)], "row 1: image")
    assert "--absolute-images" in said
    allowed = read_manifest(manifest, absolute_images=True)
    assert allowed.rows[0].request.image == str(photo)


@pytest.mark.parametrize("image", [7, 2.5])
def test_a_non_string_image_in_parquet_is_named(capsys, tmp_path, image):
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"mode": ["image"], "prompt": ["A cat"], "duration": [5],
                             "image": [image]}), manifest)
    said = one_line_exit_2(capsys, ["batch", str(manifest)], "row 1: image")
    assert "valid string" in said


def frames(count: int, kind: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    images = [Image.new("RGB", (64, 36), (i * 40 % 255, 0, 0)) for i in range(count)]
    images[0].save(out, kind, save_all=True, append_images=images[1:])
    return out.getvalue()


@pytest.mark.parametrize(("name", "content", "says"), [
    ("passwd", None, "not an image Pillow can read"),
    ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
     "not an image Pillow can read"),
    ("empty.jpg", b"", "empty (0 bytes)"),
    ("moving.png", "animated", "animated (3 frames)"),
    ("still.gif", "still", "GIF; give a JPEG, PNG, WebP or HEIC image"),
])
def test_an_image_is_checked_by_content_at_plan_time(capsys, tmp_path, name, content, says):
    path = Path("/etc/passwd") if content is None else tmp_path / name
    if content is not None:
        path.write_bytes(frames(3, "PNG") if content == "animated" else frames(1, "GIF")
                         if content == "still" else content)
    said = one_line_exit_2(capsys, ["plan", "--mode", "image", "--image", str(path), *FOX,
                                    "--duration", "5"], "image")
    assert says in said


def test_an_image_url_is_refused_with_what_to_do(capsys):
    said = one_line_exit_2(capsys, ["plan", "--mode", "image", "--image",
                                    "https://example.com/photo.jpg", *FOX, "--duration", "5"],
                           "image")
    assert "download it and give its path" in said


def test_a_bad_image_in_a_batch_stops_it_before_any_row_is_paid(capsys, tmp_path):
    (tmp_path / "passwd.jpg").write_bytes(Path("/etc/passwd").read_bytes())
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"prompt": "A cat", "duration": 5}) + "\n" + json.dumps(
        {"mode": "image", "prompt": "A dog", "duration": 5, "image": "passwd.jpg"}) + "\n")
    said = one_line_exit_2(capsys, ["batch", str(manifest)], "row 2: image")
    assert "not an image" in said


def test_what_the_fuzzer_found_stays_fixed(capsys, tmp_path):
    """A field name holding line breaks, a huge but finite number, a NUL in an image path."""
    body = json.dumps({"prompt": "x", "duration": 5, "scenes": [{"\n\u2028": None}]}).encode()
    one_line_exit_2(capsys, ["plan", request_file(tmp_path, body)], "")
    one_line_exit_2(capsys, ["prices", "--seconds", "1e400"], "seconds")
    body = json.dumps({"mode": "image", "prompt": "x", "duration": 5, "image": "a\0b"}).encode()
    said = one_line_exit_2(capsys, ["plan", request_file(tmp_path, body)], "image")
    assert "is not a file path" in said
