"""12-lead ECG for the shared reading centre: import, storage, automatic measurements, paper-grid display.

Inputs (all end as µV samples per lead, see docs/ecg-import.md):

- DICOM 12-lead ECG waveform (TwelveLeadECGWaveformStorage), received by C-STORE or uploaded: the
  rhythm multiplex group (or the longest one), channel sensitivity and units applied by pydicom.
- CSV device export: an optional comment header `# sample_rate_hz: 500` (and `# units: uV|mV`),
  then a header row naming the 12 leads `I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6` (any order; an
  optional `time_ms` / `t` column is ignored), then one row per sample. Sample rate may also be
  given as the `sample_rate_hz` form field.
- JSON device export: `{"sample_rate_hz": 500, "units": "uV", "leads": {"I": [...], ..., "V6": [...]}}`.

Bad input (unknown or missing leads, non-numeric values, unequal lengths, no sample rate, under
2 s or over 60 s) raises `InvalidInput` (422) before anything is stored.

Automatic measurements: R peaks on lead II (derivative, squaring, 150 ms moving integration,
adaptive threshold, 250 ms refractory period), heart rate = 60 / median RR, frontal QRS axis from
the net QRS deflection in leads I and aVF. PR, QRS and QT are entered by the reader; QTc (Bazett,
QT / √RR) is computed from the reader's QT and the RR interval when not given.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.diagnostics import repository as repo
from yilianti.exceptions import Forbidden, InvalidInput
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.i18n import code_table
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.diagnostics_media import EcgRecording

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
_BY_UPPER = {name.upper(): name for name in LEADS}
MIN_SECONDS, MAX_SECONDS = 2.0, 60.0
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_ABS_UV = 100_000.0  # 100 mV: anything beyond is not an ECG
# 3 rows × 4 columns of 2.5 s, then a 10 s lead II rhythm strip (the usual printed layout)
GRID_3X4 = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]]
MEASURE_LIMITS = {"heart_rate": (15, 350), "pr_ms": (40, 500), "qrs_ms": (30, 300), "qt_ms": (150, 800),
                  "qtc_ms": (150, 900), "axis_deg": (-180, 180)}
MEASURE_LABELS = code_table("report.measure", {"heart_rate": "心率", "pr_ms": "PR 间期", "qrs_ms": "QRS 时限",
                                                "qt_ms": "QT 间期", "qtc_ms": "QTc", "axis_deg": "电轴"})


@dataclass
class Waveform:
    sample_rate: float
    leads: dict[str, np.ndarray]  # µV, float64, every lead the same length
    device: dict[str, Any] | None = None  # the cart's own measurements and statements (DICOM annotations)

    @property
    def samples(self) -> int:
        return len(next(iter(self.leads.values())))


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, fields={field: message})


def lead_name(raw: str) -> str | None:
    """'Lead I (Einthoven)', 'lead ii', 'AVR', 'V1' → the standard name; None when not one of the 12."""
    text = raw.strip()
    if text.lower().startswith("lead "):
        text = text[5:]
    text = text.split("(")[0].strip()
    return _BY_UPPER.get(text.upper())


def _check(leads: dict[str, np.ndarray], sample_rate: float | None) -> Waveform:
    if not leads:
        raise _bad("file", "文件中没有导联数据 (no leads)")
    missing = [n for n in LEADS if n not in leads]
    if missing:
        raise _bad("file", f"缺少导联：{', '.join(missing)} (missing leads)")
    if sample_rate is None or not math.isfinite(sample_rate) or not 50 <= sample_rate <= 10_000:
        raise _bad("sample_rate_hz", "采样率缺失或不在 50–10000 Hz 之间 (sample rate missing or out of range)")
    lengths = {len(v) for v in leads.values()}
    if len(lengths) != 1:
        raise _bad("file", "各导联的采样点数不一致 (leads differ in length)")
    seconds = lengths.pop() / sample_rate
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise _bad("file", f"记录时长 {seconds:.1f} 秒，应在 {MIN_SECONDS:g}–{MAX_SECONDS:g} 秒之间 (duration)")
    for name, values in leads.items():
        if not np.all(np.isfinite(values)) or float(np.max(np.abs(values))) > MAX_ABS_UV:
            raise _bad("file", f"导联 {name} 含无效数值 (non-finite or implausible values)")
    return Waveform(float(sample_rate), {n: leads[n].astype(np.float64) for n in LEADS})


def _unit_factor(units: str | None) -> float:
    u = (units or "uV").strip().lower().replace("µ", "u").replace("μ", "u")
    if u in ("uv", "microvolt", "microvolts"):
        return 1.0
    if u in ("mv", "millivolt", "millivolts"):
        return 1000.0
    raise _bad("units", f"不支持的单位 {units}，应为 uV 或 mV (units)")


def parse_csv(text: str, sample_rate: float | None = None) -> Waveform:
    lines = text.lstrip("\ufeff").splitlines()
    meta: dict[str, str] = {}
    body_start = 0
    for i, line in enumerate(lines):
        if line.startswith("#"):
            key, _, value = line[1:].partition(":") if ":" in line else line[1:].partition("=")
            meta[key.strip().lower()] = value.strip()
            body_start = i + 1
        elif line.strip():
            break
    rows = list(csv.reader(lines[body_start:]))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise _bad("file", "文件中没有导联数据 (no leads)")
    header = [c.strip() for c in rows[0]]
    columns: dict[int, str] = {}
    unknown = []
    for i, name in enumerate(header):
        std = lead_name(name)
        if std:
            if std in columns.values():
                raise _bad("file", f"导联 {std} 重复 (duplicate lead column)")
            columns[i] = std
        elif name.lower() not in ("time_ms", "time", "t", "ms", "sample", ""):
            unknown.append(name)
    if unknown:
        raise _bad("file", f"无法识别的列：{', '.join(unknown)}；应为 {','.join(LEADS)} (unknown columns)")
    if sample_rate is None and "sample_rate_hz" in meta:
        try:
            sample_rate = float(meta["sample_rate_hz"])
        except ValueError:
            raise _bad("sample_rate_hz", "采样率不是数字 (sample rate is not a number)") from None
    factor = _unit_factor(meta.get("units"))
    data: dict[str, list[float]] = {name: [] for name in columns.values()}
    for line_no, row in enumerate(rows[1:], start=body_start + 2):
        if len(row) != len(header):
            raise _bad("file", f"第 {line_no} 行的列数与表头不符 (row {line_no}: wrong number of columns)")
        for i, name in columns.items():
            try:
                data[name].append(float(row[i]))
            except ValueError:
                raise _bad("file", f"第 {line_no} 行导联 {name} 的值“{row[i][:20]}”不是数字 "
                                   f"(row {line_no}: non-numeric value)") from None
    return _check({n: np.asarray(v) * factor for n, v in data.items()}, sample_rate)


def parse_json(text: str, sample_rate: float | None = None) -> Waveform:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _bad("file", f"JSON 格式错误 (invalid JSON): {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("leads"), dict):
        raise _bad("file", "JSON 应包含 leads 对象 (expected an object with \"leads\")")
    rate = doc.get("sample_rate_hz", sample_rate)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) and rate is not None:
        raise _bad("sample_rate_hz", "采样率不是数字 (sample rate is not a number)")
    factor = _unit_factor(doc.get("units"))
    leads: dict[str, np.ndarray] = {}
    for raw, values in doc["leads"].items():
        std = lead_name(str(raw))
        if std is None:
            raise _bad("file", f"无法识别的导联 {raw}；应为 {','.join(LEADS)} (unknown lead)")
        if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise _bad("file", f"导联 {std} 的值必须是数字数组 (lead values must be numbers)")
        leads[std] = np.asarray(values, dtype=np.float64) * factor
    return _check(leads, float(rate) if rate is not None else None)


def parse_dicom(data: bytes | str) -> Waveform:
    try:
        ds = pydicom.dcmread(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise _bad("file", f"不是有效的 DICOM 文件 (not a DICOM file): {exc}") from None
    groups = ds.get("WaveformSequence")
    if not groups:
        raise _bad("file", "DICOM 文件不含波形数据 (no WaveformSequence)")
    best = 0
    for i, group in enumerate(groups):
        if str(group.get("MultiplexGroupLabel", "")).upper() == "RHYTHM":
            best = i
            break
        if int(group.NumberOfWaveformSamples) > int(groups[best].NumberOfWaveformSamples):
            best = i
    group = groups[best]
    try:
        arr = ds.waveform_array(best)
    except Exception as exc:  # noqa: BLE001 - malformed waveform data
        raise _bad("file", f"无法解码波形数据 (waveform data undecodable): {exc}") from None
    leads: dict[str, np.ndarray] = {}
    for c, channel in enumerate(group.ChannelDefinitionSequence):
        source = channel.get("ChannelSourceSequence")
        name = lead_name(str(source[0].get("CodeMeaning", ""))) if source else None
        if name is None or name in leads:
            continue
        units = channel.get("ChannelSensitivityUnitsSequence")
        factor = _unit_factor(str(units[0].CodeValue)) if units else 1.0
        leads[name] = arr[:, c] * factor
    wf = _check(leads, float(group.SamplingFrequency))
    wf.device = device_measurements(ds) or None
    return wf


DEVICE_CONCEPTS = {"rr interval": "rr_ms", "pr interval": "pr_ms", "qrs duration": "qrs_ms", "qt interval": "qt_ms",
                   "qtc interval": "qtc_ms", "qrs axis": "axis_deg", "p axis": "p_axis_deg", "t axis": "t_axis_deg"}


def device_measurements(ds: Any) -> dict[str, Any]:
    """Measurements and interpretation statements the cart wrote into WaveformAnnotationSequence."""
    out: dict[str, Any] = {}
    statements: list[str] = []
    for item in ds.get("WaveformAnnotationSequence", []) or []:
        text = str(item.get("UnformattedTextValue", "") or "").strip()
        if text:
            statements.append(text[:200])
            continue
        names = item.get("ConceptNameCodeSequence")
        value = item.get("NumericValue")
        if not names or value in (None, ""):
            continue
        key = DEVICE_CONCEPTS.get(str(names[0].get("CodeMeaning", "")).strip().lower())
        if hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
            value = value[0] if len(value) else None
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if key and key not in out:
            out[key] = int(round(number))
    if out.get("rr_ms"):
        out["heart_rate"] = int(round(60000 / out["rr_ms"]))
    if statements:
        out["statements"] = statements
    return out


def parse_upload(filename: str, data: bytes, sample_rate: float | None = None) -> tuple[str, Waveform]:
    """Pick the parser by content: DICOM (DICM magic), JSON ({), else CSV."""
    if not data.strip():
        raise _bad("file", "文件为空 (empty file)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise _bad("file", f"文件过大（最多 {MAX_UPLOAD_BYTES // 1024 // 1024} MB）(file too large)")
    if data[128:132] == b"DICM":
        return "dicom", parse_dicom(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad("file", "文件既不是 DICOM，也不是 UTF-8 文本 (neither DICOM nor UTF-8 text)") from None
    if text.lstrip().startswith("{"):
        return "json", parse_json(text, sample_rate)
    return "csv", parse_csv(text, sample_rate)


# ------------------------------------------------------------------------------ measurements


def _moving_average(x: np.ndarray, n: float) -> np.ndarray:
    n = max(int(n), 1)
    return np.convolve(x, np.ones(n) / n, mode="same")


def _filtered(signal: np.ndarray, fs: float) -> np.ndarray:
    x = signal - _moving_average(signal, fs * 0.6)  # remove baseline wander
    return _moving_average(x, max(fs * 0.012, 1))  # light low-pass (muscle noise)


def detect_r_peaks(signal: np.ndarray | list[np.ndarray], fs: float) -> list[int]:
    """Sample indexes of R peaks (Pan–Tompkins-like, simplified) in one lead, or in several together."""
    signals = signal if isinstance(signal, list) else [signal]
    xs = [_filtered(s, fs) for s in signals]
    energy: np.ndarray = np.sum([np.diff(x, prepend=x[0]) ** 2 for x in xs], axis=0)
    amplitude: np.ndarray = np.sum([x ** 2 for x in xs], axis=0)
    integ = _moving_average(energy, fs * 0.15)
    threshold = 0.3 * float(np.percentile(integ, 99))
    if threshold <= 0:
        return []
    above = integ > threshold
    peaks: list[int] = []
    refractory = int(fs * 0.25)
    i, n = 0, len(integ)
    while i < n:
        if above[i]:
            j = i
            while j < n and above[j]:
                j += 1
            lo, hi = max(i - int(fs * 0.08), 0), min(j + int(fs * 0.08), n)
            peak = lo + int(np.argmax(amplitude[lo:hi]))
            if peaks and peak - peaks[-1] < refractory:
                if amplitude[peak] > amplitude[peaks[-1]]:
                    peaks[-1] = peak
            else:
                peaks.append(peak)
            i = j
        else:
            i += 1
    return peaks


def heart_rate(peaks: list[int], fs: float) -> tuple[int | None, int | None]:
    """(beats per minute, RR interval in ms) from the median RR."""
    if len(peaks) < 2:
        return None, None
    rr = float(np.median(np.diff(peaks))) / fs
    return int(round(60.0 / rr)), int(round(rr * 1000))


def qtc_bazett(qt_ms: float, rr_ms: float) -> int:
    return int(round(qt_ms / math.sqrt(rr_ms / 1000.0)))


def _net_qrs(signal: np.ndarray, peaks: list[int], fs: float) -> float:
    nets = []
    for p in peaks:
        b0, b1 = p - int(fs * 0.25), p - int(fs * 0.15)
        q0, q1 = p - int(fs * 0.06), p + int(fs * 0.06)
        if b0 < 0 or q1 > len(signal):
            continue
        baseline = float(np.median(signal[b0:b1]))
        seg = signal[q0:q1] - baseline
        nets.append(float(seg.max() + seg.min()))
    return float(np.median(nets)) if nets else 0.0


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    return np.convolve(x, np.ones(max(n, 1)) / max(n, 1), mode="same")


def intervals(wf: Waveform, peaks: list[int], rr_samples: float) -> dict[str, int]:
    """PR, QRS and QT (ms) on the median beat of all 12 leads; what cannot be found is left out.

    QRS onset/offset: where the spatial velocity (sum over leads of |d/dt|) settles below 3 % of its
    QRS peak above the resting level for 10 ms; T end: tangent at the steepest descent after the T
    peak of the lead with the largest T, crossing that lead's PR-segment level; P onset: where the
    largest lead II deflection between the previous T end and the QRS falls to 5 % of its height.
    On pydicom's waveform_ecg.dcm this gives PR 168 / QRS 70 / QT 356 ms against the cart's
    161 / 75 / 368 ms. The reader confirms or corrects every value.
    """
    fs = wf.sample_rate

    def ms(v: float) -> int:
        return max(int(round(v * fs / 1000.0)), 1)

    pre, post = ms(350), int(min(ms(650), 0.95 * rr_samples))
    beats = [p for p in peaks if p - pre >= 0 and p + post <= wf.samples]
    if len(beats) < 2 or post < ms(300):
        return {}
    med = {n: np.median(np.stack([wf.leads[n][p - pre:p + post] for p in beats]), axis=0) for n in LEADS}
    velocity: np.ndarray = np.sum([np.abs(np.gradient(_smooth(med[n], ms(8)))) for n in LEADS], axis=0)
    r0 = pre
    vmax = float(velocity[r0 - ms(60):r0 + ms(60)].max())
    rest = float(np.percentile(velocity, 20))
    thr = rest + 0.03 * (vmax - rest)
    on = off = None
    for j in range(r0, r0 - ms(150), -1):
        if j - ms(10) >= 0 and np.all(velocity[j - ms(10):j] < thr):
            on = j
            break
    for j in range(r0, min(r0 + ms(200), len(velocity) - ms(10))):
        if np.all(velocity[j:j + ms(10)] < thr):
            off = j
            break
    if on is None or off is None:
        return {}
    out = {"qrs_ms": int(round((off - on) * 1000 / fs))}
    # T end (tangent method) on the lead with the largest T wave
    w0, w1 = off + ms(80), len(velocity) - 1
    best: tuple[float, int, np.ndarray] | None = None
    for n in LEADS:
        level = float(np.median(med[n][on - ms(20):on - ms(5)]))
        x = _smooth(med[n], ms(10)) - level
        if w1 - w0 < ms(40):
            break
        k = w0 + int(np.argmax(np.abs(x[w0:w1])))
        if best is None or abs(x[k]) > best[0]:
            best = (abs(float(x[k])), k, x * np.sign(x[k]))
    tend = None
    if best is not None and best[0] > 50:
        _, k, y = best
        slope = np.gradient(y)
        s_ = k + int(np.argmin(slope[k:w1]))
        if slope[s_] < 0:
            tend = s_ - y[s_] / slope[s_]
            out["qt_ms"] = int(round((tend - on) * 1000 / fs))
    # P onset on lead II
    if tend is not None:
        x = _smooth(med["II"], ms(10))
        p0, p1 = max(on - ms(300), int(round(tend - rr_samples)) + ms(20), ms(20)), on - ms(40)
        if p1 - p0 > ms(60):
            y = x - float(np.median(x[p0:p0 + ms(20)]))
            pk = p0 + int(np.argmax(np.abs(y[p0:p1])))
            amp = abs(float(y[pk]))
            if amp > 40:
                j = pk
                while j > p0 and abs(y[j]) > 0.05 * amp:
                    j -= 1
                out["pr_ms"] = int(round((on - j) * 1000 / fs))
    return out


def measure(wf: Waveform) -> dict[str, Any]:
    fs = wf.sample_rate
    peaks = detect_r_peaks(wf.leads["II"], fs)
    method = "lead II R peaks"
    if len(peaks) < 2 or len(peaks) > wf.samples / fs * 5:  # lead II flat (axis near -30°) or noise
        peaks = detect_r_peaks([wf.leads[n] for n in LEADS], fs)
        method = "R peaks from all 12 leads (lead II unusable)"
    rate, rr = heart_rate(peaks, fs)
    out: dict[str, Any] = {"heart_rate": rate, "rr_ms": rr, "r_peaks": len(peaks),
                           "method": f"{method}; axis from net QRS in I and aVF; PR/QRS/QT on the median beat"}
    if peaks:
        net_i, net_avf = _net_qrs(wf.leads["I"], peaks, fs), _net_qrs(wf.leads["aVF"], peaks, fs)
        if net_i or net_avf:
            out["axis_deg"] = int(round(math.degrees(math.atan2(net_avf, net_i))))
    if rr:
        out.update(intervals(wf, peaks, rr * fs / 1000.0))
        if out.get("qt_ms"):
            out["qtc_ms"] = qtc_bazett(out["qt_ms"], rr)
    return out


# ------------------------------------------------------------------------------ storage


def store(db: Session, subject: Subject | None, order: DiagnosticOrder, wf: Waveform, source: str,
          filename: str | None = None, instance_id: int | None = None) -> EcgRecording:
    samples = np.concatenate([np.round(wf.leads[n]).astype("<i4") for n in LEADS])
    auto = measure(wf)
    if wf.device:
        auto["device"] = wf.device
    # the reader's fields start from the cart's values when it wrote some, else from ours
    start = {k: (wf.device or {}).get(k, auto.get(k)) for k in MEASURE_LIMITS}
    rec = EcgRecording(order_id=order.id, patient_id=order.patient_id, source=source, filename=(filename or "")[:255]
                       or None, imaging_instance_id=instance_id, sample_rate=wf.sample_rate,
                       sample_count=wf.samples, leads=list(LEADS), samples=samples.tobytes(), auto=auto,
                       uploaded_by_user_id=subject.user_id if subject else None, **start)
    db.add(rec)
    db.flush()
    audit.record(db, subject, "diagnostics.ecg_import", "ecg_recording", rec.id, patient_id=order.patient_id,
                 detail={"order_id": order.id, "source": source, "sample_rate": wf.sample_rate,
                         "samples": wf.samples, "heart_rate": auto.get("heart_rate")})
    return rec


def waveform_of(rec: EcgRecording) -> Waveform:
    arr = np.frombuffer(rec.samples, dtype="<i4").reshape(len(rec.leads), rec.sample_count)
    return Waveform(rec.sample_rate, {name: arr[i].astype(np.float64) for i, name in enumerate(rec.leads)})


def latest(db: Session, order_id: int) -> EcgRecording | None:
    return repo.latest_ecg(db, order_id)


def import_received(db: Session, order: DiagnosticOrder) -> EcgRecording | None:
    """A 12-lead waveform that arrived by C-STORE (or DICOM upload) becomes a recording, once."""
    instances = repo.instances_of_order(db, order.id)
    done = repo.ecg_instance_ids(db, order.id)
    rec = None
    for inst in instances:
        if inst.id in done:
            continue
        try:
            head = pydicom.dcmread(inst.path, stop_before_pixels=True)
            if "WaveformSequence" not in head:
                continue
            wf = parse_dicom(inst.path)
        except (InvalidInput, OSError, InvalidDicomError):
            continue
        rec = store(db, None, order, wf, "dicom", filename=inst.sop_instance_uid, instance_id=inst.id)
    return rec


def save_reading(db: Session, subject: Subject, rec: EcgRecording, order: DiagnosticOrder,
                 values: dict[str, str | int | None], conclusion: str | None, rhythm: str | None) -> EcgRecording:
    """The reader's measurements and conclusion (reading centre only). Empty QTc = Bazett from QT and RR."""
    if order.reading_centre_institution_id and subject.acting_institution_id != order.reading_centre_institution_id:
        raise Forbidden("只有诊断中心的医师可以填写心电图报告")
    parsed: dict[str, int | None] = {}
    errors: dict[str, str] = {}
    for key, (lo, hi) in MEASURE_LIMITS.items():
        raw = values.get(key)
        if raw is None or str(raw).strip() == "":
            parsed[key] = None
            continue
        try:
            number = int(round(float(str(raw).strip())))
        except ValueError:
            errors[key] = f"{MEASURE_LABELS[key]}必须是数字"
            continue
        if not lo <= number <= hi:
            errors[key] = f"{MEASURE_LABELS[key]}应在 {lo}–{hi} 之间"
        parsed[key] = number
    if conclusion and len(conclusion) > 4000:
        errors["conclusion"] = "结论过长（最多4000字）"
    if errors:
        raise InvalidInput(fields=errors)
    if parsed["qtc_ms"] is None and parsed["qt_ms"] is not None:
        rate = parsed["heart_rate"] or (rec.auto or {}).get("heart_rate")
        if rate:
            parsed["qtc_ms"] = qtc_bazett(parsed["qt_ms"], 60000.0 / rate)
    before = {k: getattr(rec, k) for k in (*MEASURE_LIMITS, "conclusion", "rhythm")}
    for key, value in parsed.items():
        setattr(rec, key, value)
    rec.conclusion = (conclusion or "").strip() or None
    rec.rhythm = (rhythm or "").strip()[:100] or None
    rec.read_by_user_id, rec.read_at = subject.user_id, clock.now()
    after = {k: getattr(rec, k) for k in (*MEASURE_LIMITS, "conclusion", "rhythm")}
    db.flush()
    audit.record(db, subject, "diagnostics.ecg_reading", "ecg_recording", rec.id, patient_id=rec.patient_id,
                 detail=audit.diff(before, after))
    return rec


# ------------------------------------------------------------------------------ paper-grid SVG


@dataclass
class Trace:
    lead: str
    x0: float  # mm
    baseline: float  # mm
    points: str  # SVG polyline points in mm


def _points(values: np.ndarray, fs: float, x0: float, baseline: float, max_rate: float = 500.0) -> str:
    step = max(int(fs // max_rate), 1)
    v = values[::step]
    t = np.arange(len(v)) * step / fs
    xs = x0 + t * 25.0  # 25 mm/s
    ys = baseline - (v / 1000.0) * 10.0  # 10 mm/mV
    return " ".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys, strict=True))


def paper(rec: EcgRecording, layout: str = "3x4") -> dict[str, Any]:
    """Everything the template needs to draw the ECG on the standard grid (units: mm)."""
    wf = waveform_of(rec)
    fs = wf.sample_rate
    cal = 10.0  # calibration pulse area at the left of each row
    traces: list[Trace] = []
    rows: list[float] = []
    if layout == "12x1":
        seconds = min(wf.samples / fs, 10.0)
        n = int(seconds * fs)
        row_h = 25.0
        for r, name in enumerate(LEADS):
            base = row_h * r + row_h / 2 + 2.5
            rows.append(base)
            traces.append(Trace(name, cal, base, _points(wf.leads[name][:n], fs, cal, base)))
        height = row_h * len(LEADS) + 5
    else:
        seconds = 10.0
        col = int(2.5 * fs)
        row_h = 30.0
        for r, names in enumerate(GRID_3X4):
            base = row_h * r + 17.5
            rows.append(base)
            for c, name in enumerate(names):
                chunk = wf.leads[name][c * col:(c + 1) * col]
                if len(chunk):
                    traces.append(Trace(name, cal + 62.5 * c, base,
                                        _points(chunk, fs, cal + 62.5 * c, base)))
        base = row_h * 3 + 17.5
        rows.append(base)
        traces.append(Trace("II", cal, base, _points(wf.leads["II"][:int(10 * fs)], fs, cal, base)))
        traces[-1].lead = "II rhythm"
        height = row_h * 4 + 5
    width = cal + seconds * 25.0
    width = math.ceil(width / 5.0) * 5.0
    height = math.ceil(height / 5.0) * 5.0
    return {"width": width, "height": height, "traces": traces, "rows": rows, "layout": layout,
            "seconds": seconds}


def summary(rec: EcgRecording) -> dict[str, Any]:
    return {"id": rec.id, "order_id": rec.order_id, "source": rec.source, "filename": rec.filename,
            "sample_rate_hz": rec.sample_rate, "samples_per_lead": rec.sample_count,
            "seconds": round(rec.sample_count / rec.sample_rate, 3), "leads": rec.leads, "auto": rec.auto,
            "measurements": {k: getattr(rec, k) for k in MEASURE_LIMITS}, "rhythm": rec.rhythm,
            "conclusion": rec.conclusion, "read_by_user_id": rec.read_by_user_id,
            "read_at": rec.read_at.isoformat() if rec.read_at else None, "created_at": rec.created_at.isoformat()}


def recording_for(db: Session, subject: Subject, rec_id: int, action: str) -> tuple[EcgRecording, DiagnosticOrder]:
    """A recording, by its order's rule (`imaging.order_for`: the shared record's rule for one entry); audited."""
    from yilianti.authz import policy
    from yilianti.exceptions import NotFound
    from yilianti.record.sources import order_institutions

    rec = kit.get(db, EcgRecording, rec_id)
    order = kit.get(db, DiagnosticOrder, rec.order_id) if rec else None
    if rec is None or order is None:
        raise NotFound()
    policy.require_entry(db, subject, rec.patient_id, order_institutions(order), action=action,
                         resource_type="ecg_recording", resource_id=rec.id)
    return rec, order


def svg_document(rec: EcgRecording, layout: str = "3x4") -> str:
    """A standalone SVG of the paper (the report's printable copy, the report editor's embed)."""
    from yilianti.web.render import environment

    return environment("zh").get_template("diagnostics/ecg_paper.svg").render(paper=paper(rec, layout), rec=rec,
                                                                            standalone=True)


REPORT_KEYS = (("heart_rate", "HR"), ("pr_ms", "PR"), ("qrs_ms", "QRS"), ("qt_ms", "QT"), ("qtc_ms", "QTc"),
               ("axis_deg", "Axis"))


def report_lines(rec: EcgRecording) -> list[str]:
    """'HR: 61' … lines for the report's structured measurements (the reader's values)."""
    return [f"{label}: {getattr(rec, key)}" for key, label in REPORT_KEYS if getattr(rec, key) is not None]
