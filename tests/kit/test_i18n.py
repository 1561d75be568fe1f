from yilianti.kit import i18n


def test_core_words_win_over_domain_catalogues() -> None:
    # diagnostics.json says 患者 = "Patient" for a form label; the menu must still say "Patients".
    assert i18n.translate("患者", "en") == "Patients"
    assert i18n.translate("患者", "zh") == "患者"


def test_parameters_are_filled_and_bad_ones_do_not_raise() -> None:
    assert i18n.translate("{n} 条", "zh", n=3) == "3 条"
    assert i18n.translate("{missing}", "zh") == "{missing}"
