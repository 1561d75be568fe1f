"""Chronic disease management with family-doctor teams (慢病管理与家庭医生签约, issue 20)."""
