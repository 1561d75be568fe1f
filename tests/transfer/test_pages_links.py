"""The transfer form is reachable from an urgent referral and never reveals another site's patient."""

from __future__ import annotations

from tests import builders as b


def test_patient_id_in_url_does_not_reveal_a_stranger(db, client):  # type: ignore[no-untyped-def]
    mine = b.institution(db, "廊坊市儿童医院", kind="specialty", province="河北")
    other = b.institution(db, "另一家医院")
    b.user(db, mine, "doctor", username="lfch")
    stranger = b.patient(db, b.subject_for(db, b.user(db, other, "doctor")), name="外院患儿")
    b.login(client, "lfch")
    page = client.get(f"/transfers/new?patient_id={stranger.id}")
    assert page.status_code == 200 and "外院患儿" not in page.text
    own = b.patient(db, b.subject_for(db, b.user(db, mine, "doctor")), name="本院患儿",
                    resident_id=b.resident_id(seq=77))
    page = client.get(f"/transfers/new?patient_id={own.id}&referral_id=12")
    assert "本院患儿" in page.text and 'name="referral_id" value="12"' in page.text
