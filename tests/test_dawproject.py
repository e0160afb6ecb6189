"""DAWproject export, validated against Bitwig's own XSDs with xmlschema and unpacked like a DAW would."""

import os
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import xmlschema

from daw_plugin.audio import Clip, read_clip, write_clip
from daw_plugin.hosts import HostError
from daw_plugin.hosts.dawproject import export
from daw_plugin.hosts.session import SessionHost

# CI clones the repository with `shared/` beside it; the schemas are Bitwig's (MIT), not copied in.
SCHEMAS = Path(__file__).resolve().parents[1].parent / "shared" / "formats" / "dawproject"
needs_schemas = pytest.mark.skipif(not (SCHEMAS / "Project.xsd").is_file(),
                                   reason=f"Bitwig's DAWproject schemas are not at {SCHEMAS}")


def noise(seconds, rate, channels, seed=0):
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, (channels, round(seconds * rate)))
    return Clip(samples.astype(np.float32), rate)


@pytest.fixture
def folder(tmp_path) -> Path:
    """Two tracks, three clips: mixed rates and channel counts, one clip trimmed by hand in the manifest."""
    host = SessionHost.create(tmp_path / "song", tempo_bpm=92.5, sample_rate=48000, time_signature=(6, 8))
    takes = tmp_path / "takes"
    takes.mkdir()
    rain = write_clip(noise(1.0, 48000, 2), takes / "rain.wav")
    host.insert(rain, None, 0.5)
    host.insert(write_clip(noise(0.5, 16000, 1, seed=1), takes / "thunder.flac"), "rain", 2.0)
    host.insert(rain, None, 1.25)
    manifest = host.folder / "session.json"
    manifest.write_text(manifest.read_text().replace('"start_seconds": 1.25', '"start_seconds": 1.25, '
                                                     '"offset_seconds": 0.25, "duration_seconds": 0.5'))
    return host.folder


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@needs_schemas
def test_export_is_valid_against_bitwigs_schemas(folder, tmp_path):
    files = members(export(folder, tmp_path / "song.dawproject"))
    project, metadata = xmlschema.XMLSchema(SCHEMAS / "Project.xsd"), xmlschema.XMLSchema(SCHEMAS / "MetaData.xsd")
    project.validate(files["project.xml"].decode())  # raises with the first violation
    metadata.validate(files["metadata.xml"].decode())
    # The validator is live: the same document with a dangling track reference or a tempo without unit fails.
    broken = files["project.xml"].decode().replace(' unit="bpm"', "")
    assert not project.is_valid(broken)
    root = ET.fromstring(files["project.xml"])
    root.find("Arrangement/Lanes/Lanes").set("track", "nowhere")
    assert not project.is_valid(ET.tostring(root, encoding="unicode"))


@needs_schemas
def test_an_empty_session_exports_valid_xml(tmp_path):
    folder = SessionHost.create(tmp_path / "empty").folder
    files = members(export(folder, tmp_path / "empty.dawproject"))
    xmlschema.XMLSchema(SCHEMAS / "Project.xsd").validate(files["project.xml"].decode())
    assert sorted(files) == ["metadata.xml", "project.xml"]


def test_export_holds_every_file_the_xml_points_to(folder, tmp_path):
    files = members(export(folder, tmp_path / "song.dawproject"))
    root = ET.fromstring(files["project.xml"])
    audios = list(root.iter("Audio"))
    paths = [audio.find("File").get("path") for audio in audios]
    assert paths == ["audio/rain.wav", "audio/thunder.flac", "audio/rain-2.wav"]
    for path, audio in zip(paths, audios, strict=True):
        assert files[path] == (folder / path).read_bytes()
        clip = read_clip(folder / path)
        assert (int(audio.get("sampleRate")), int(audio.get("channels"))) == (clip.sample_rate, clip.channels)
        assert float(audio.get("duration")) == pytest.approx(clip.duration_seconds)
    assert sorted(files) == sorted(["project.xml", "metadata.xml", *paths])


def test_export_keeps_tracks_times_and_tempo(folder, tmp_path):
    root = ET.fromstring(members(export(folder, tmp_path / "song.dawproject"))["project.xml"])
    assert {"unit": "bpm", "value": "92.5"}.items() <= root.find("Transport/Tempo").attrib.items()
    signature = root.find("Transport/TimeSignature")
    assert (signature.get("numerator"), signature.get("denominator")) == ("6", "8")
    tracks = {t.get("id"): t for t in root.iter("Track")}
    master = next(t for t in tracks.values() if t.find("Channel").get("role") == "master")
    lanes = root.findall("Arrangement/Lanes/Lanes")
    assert root.find("Arrangement/Lanes").get("timeUnit") == "seconds"
    assert [tracks[lane.get("track")].get("name") for lane in lanes] == ["rain", "rain-2"]
    for lane in lanes:
        channel = tracks[lane.get("track")].find("Channel")
        assert channel.get("role") == "regular" and channel.get("destination") == master.find("Channel").get("id")
    clips = [[(c.get("time"), c.get("duration"), c.get("playStart"), c.get("playStop")) for c in lane.iter("Clip")]
             for lane in lanes]
    assert clips == [[("0.5", "1.0", "0.0", "1.0"), ("2.0", "0.5", "0.0", "0.5")],
                     [("1.25", "0.5", "0.25", "0.75")]]
    metadata = ET.fromstring(members(tmp_path / "song.dawproject")["metadata.xml"])
    assert metadata.find("Title").text == "song"


def test_export_never_replaces_a_file(folder, tmp_path):
    out = tmp_path / "song.dawproject"
    out.write_bytes(b"yesterday's export")
    with pytest.raises(HostError) as info:
        export(folder, out)
    assert "already exists" in str(info.value) and "\n" not in str(info.value)
    assert out.read_bytes() == b"yesterday's export"
    assert sorted(os.listdir(tmp_path)) == ["song", "song.dawproject", "takes"]  # no temporary file left


def test_export_with_force_replaces_the_file(folder, tmp_path):
    out = tmp_path / "song.dawproject"
    out.write_bytes(b"yesterday's export")
    assert export(folder, out, force=True) == out
    assert "project.xml" in members(out)
    assert sorted(os.listdir(tmp_path)) == ["song", "song.dawproject", "takes"]


def test_export_names_bad_requests_in_one_line(folder, tmp_path):
    with pytest.raises(HostError, match=r"ending in \.dawproject"):
        export(folder, tmp_path / "song.zip")
    with pytest.raises(HostError, match="folder that exists"):
        export(folder, tmp_path / "missing" / "song.dawproject")
    (folder / "audio" / "thunder.flac").unlink()
    with pytest.raises(HostError, match="thunder.flac, which does not exist"):
        export(folder, tmp_path / "song.dawproject")
    assert not (tmp_path / "song.dawproject").exists()
