from yilianti.kit import i18n


def test_core_words_win_over_domain_catalogues() -> None:
    # diagnostics.json says 患者 = "Patient" for a form label; the menu must still say "Patients".
    assert i18n.translate("患者", "en") == "Patients"
    assert i18n.translate("患者", "zh") == "患者"


def test_parameters_are_filled_and_bad_ones_do_not_raise() -> None:
    assert i18n.translate("{n} 条", "zh", n=3) == "3 条"
    assert i18n.translate("{missing}", "zh") == "{missing}"


def test_label_reads_the_kind_then_the_code_table_then_translates_the_chinese() -> None:
    from yilianti.kit import i18n

    assert i18n.label("specialty", "pediatric_respiratory", "zh") == "小儿呼吸"
    assert i18n.label("specialty", "pediatric_respiratory", "en") != "pediatric_respiratory"
    i18n.code_table("test.kind", {"x_code": "已同意"})
    assert i18n.label("test.kind", "x_code", "zh") == "已同意"
    assert i18n.label("test.kind", "x_code", "en") == "Accepted"  # the Chinese label through the en catalogue
    i18n.MISSING_LABELS.discard("test.kind.unknown_code")
    assert i18n.label("test.kind", "unknown_code", "zh") == "unknown_code"
    assert "test.kind.unknown_code" in i18n.MISSING_LABELS
    assert i18n.label("test.kind", None, "zh") == ""
