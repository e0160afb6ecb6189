"""Export a session as a DAWproject file, Bitwig's open exchange format (Bitwig, Studio One, Cubase).

A ``.dawproject`` is a ZIP holding ``project.xml``, ``metadata.xml`` and the audio the project
points to. The XML follows Bitwig's own ``Project.xsd`` and ``MetaData.xsd``; the layout mirrors
their reference writer's "raw seconds" audio case: the arrangement counts in seconds, each clip holds
its `Audio` directly (no warping), and every regular track's channel feeds a master track.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from xml.etree import ElementTree as ET

from daw_plugin.audio import Clip
from daw_plugin.files import refuse_existing, replace_output, write_output
from daw_plugin.hosts.base import HostError, as_host_error
from daw_plugin.hosts.session import read_audio
from daw_plugin.hosts.session_manifest import Session, SessionClip, clip_path, load_session

FORMAT_VERSION = "1.0"
SUFFIX = ".dawproject"


def export(folder: Path, out: Path, force: bool = False) -> Path:
    """Write the session in ``folder`` to ``out`` (``*.dawproject``) atomically; an existing ``out`` only with force."""
    session = load_session(Path(folder))
    out = Path(out)
    if out.suffix.lower() != SUFFIX:
        raise HostError(f"Cannot export to {out.name}; choose a name ending in {SUFFIX}.")
    with as_host_error():
        if not force:
            refuse_existing(out)
        media = {clip.file: read_audio(clip_path(session.folder, clip.file))
                 for track in session.tracks for clip in track.clips}
        project, metadata = project_xml(session, media), metadata_xml(session)
        return (replace_output if force else write_output)(out, lambda tmp: _write_zip(tmp, session, project,
                                                                                        metadata, media))


def project_xml(session: Session, media: dict[str, Clip]) -> bytes:
    """``project.xml``; ``media`` maps each clip's file to its decoded audio (for rate, channels, length)."""
    ids = (f"id{n}" for n in count(1))
    project = ET.Element("Project", version=FORMAT_VERSION)
    ET.SubElement(project, "Application", name="daw-plugin", version=_version())
    transport = ET.SubElement(project, "Transport")
    ET.SubElement(transport, "Tempo", id=next(ids), name="Tempo", unit="bpm", value=_num(session.tempo_bpm))
    numerator, denominator = session.time_signature
    ET.SubElement(transport, "TimeSignature", id=next(ids), name="Time Signature", numerator=str(numerator),
                  denominator=str(denominator))
    structure = ET.SubElement(project, "Structure")
    _, master_channel = _track(structure, ids, "Master", role="master")
    track_ids = [_track(structure, ids, t.name, role="regular", destination=master_channel)[0] for t in session.tracks]
    arrangement = ET.SubElement(project, "Arrangement", id=next(ids))
    lanes = ET.SubElement(arrangement, "Lanes", id=next(ids), timeUnit="seconds")
    for track, track_id in zip(session.tracks, track_ids, strict=True):
        clips = ET.SubElement(ET.SubElement(lanes, "Lanes", id=next(ids), track=track_id), "Clips", id=next(ids))
        for clip in track.clips:
            _clip(clips, ids, clip, media[clip.file])
    return _serialize(project)


def metadata_xml(session: Session) -> bytes:
    metadata = ET.Element("MetaData")
    ET.SubElement(metadata, "Title").text = session.name
    ET.SubElement(metadata, "Comment").text = f"Exported by daw-plugin {_version()} from {session.folder.name}."
    return _serialize(metadata)


def _track(parent: ET.Element, ids: Iterator[str], name: str, role: str,
           destination: str | None = None) -> tuple[str, str]:
    """A Track with its mixer Channel; returns (track id, channel id): lanes name tracks, routing names channels."""
    track_id, channel_id = next(ids), next(ids)
    track = ET.SubElement(parent, "Track", id=track_id, name=name, loaded="true")
    if role == "regular":
        track.set("contentType", "audio")
    channel = ET.SubElement(track, "Channel", id=channel_id, role=role, audioChannels="2")
    if destination:
        channel.set("destination", destination)
    # The schema fixes the order of a channel's parameters: Mute, Pan, Volume.
    ET.SubElement(channel, "Mute", id=next(ids), name="Mute", value="false")
    ET.SubElement(channel, "Pan", id=next(ids), name="Pan", unit="normalized", value="0.5", min="0", max="1")
    ET.SubElement(channel, "Volume", id=next(ids), name="Volume", unit="linear", value="1", min="0", max="2")
    return track_id, channel_id


def _clip(parent: ET.Element, ids: Iterator[str], clip: SessionClip, audio: Clip) -> None:
    """A clip on a seconds timeline holding its audio directly; play range = offset .. offset + duration."""
    played = audio.duration_seconds - clip.offset_seconds if clip.duration_seconds is None else clip.duration_seconds
    played = max(played, 0.0)
    element = ET.SubElement(parent, "Clip", name=Path(clip.file).stem, time=_num(clip.start_seconds),
                            duration=_num(played), contentTimeUnit="seconds", playStart=_num(clip.offset_seconds),
                            playStop=_num(clip.offset_seconds + played))
    media = ET.SubElement(element, "Audio", id=next(ids), timeUnit="seconds", sampleRate=str(audio.sample_rate),
                          channels=str(audio.channels), duration=_num(audio.duration_seconds))
    ET.SubElement(media, "File", path=clip.file)


def _write_zip(path: Path, session: Session, project: bytes, metadata: bytes, media: dict[str, Clip]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("project.xml", project, zipfile.ZIP_DEFLATED)
        archive.writestr("metadata.xml", metadata, zipfile.ZIP_DEFLATED)
        for file in media:  # stored as-is: audio barely compresses, and the member path is the File path
            # Links resolved and checked again: what is packed is what the manifest check let through.
            archive.write(clip_path(session.folder, file), file, zipfile.ZIP_STORED)


def _serialize(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _num(value: float) -> str:
    return repr(float(value))  # xs:double accepts Python's shortest round-trip form ("1.5", "1e-05")


def _version() -> str:
    from daw_plugin import __version__

    return __version__
