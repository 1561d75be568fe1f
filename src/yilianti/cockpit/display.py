"""How the cockpit shows its figures, on the page, in the spreadsheet and in the PDF report: the number formats,
the groups of tiles and the charts."""

from __future__ import annotations

# the charts of the cockpit: (element id, title, indicator codes)
CHARTS = (
    ("chart-referral", "双向转诊曲线（上转与下转，按月）", ["referral.up", "referral.down"]),
    ("chart-sinking", "号源下沉比例与预留号使用率", ["sinking.slot_ratio", "sinking.reserve_use"]),
    ("chart-centres", "远程诊断量与报告中位时长", ["centres.remote_reads", "centres.tat_median"]),
    ("chart-recognition", "结果互认率与节省费用", ["recognition.rate", "recognition.saved"]),
    ("chart-assistance", "帮扶：专家下沉人日与坐诊接诊人次", ["assistance.person_days", "assistance.patients"]),
    ("chart-grassroots", "基层就诊与县域内住院", ["national.07_grassroots_visits", "national.11_inpatients_in_county"]),
)
# the indicators some chart draws: their rows are in the table of the numbers behind the charts
CHARTED = frozenset(code for _cid, _title, codes in CHARTS for code in codes)
GROUPS = (("referral", "双向转诊"), ("sinking", "资源下沉"), ("centres", "共享中心与远程医疗"),
          ("recognition", "结果互认"), ("assistance", "帮扶"))


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "change":
        return f"{value * 100:+.1f}%"
    if unit == "yesno":
        return "是" if value >= 1 else "否"
    if unit in ("times", "per10k"):
        return f"{value:.2f}"
    if unit in ("hours", "minutes"):
        return f"{value:.1f}"
    if unit == "yuan":
        return f"{value:,.0f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
