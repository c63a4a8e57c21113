-- Social emergency forces (社会应急力量): teams and their filing, members with certificates and
-- insurance, call-ups, service hours and compensation claims.
-- ID numbers and phones are stored only encrypted (AES-256-GCM, "v1:" + hex); `id_index` is a
-- keyed hash for equality lookups. Dates are DATE, instants TIMESTAMPTZ.

CREATE TABLE teams (
    id              BIGSERIAL PRIMARY KEY,
    code            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    org_type        TEXT NOT NULL CHECK (org_type IN ('social_org', 'volunteer_team', 'enterprise_team', 'grassroots_team', 'militia', 'other')),
    registration_no TEXT,
    region_code     TEXT NOT NULL REFERENCES regions (code),
    lon             DOUBLE PRECISION NOT NULL,
    lat             DOUBLE PRECISION NOT NULL,
    equipment       JSONB NOT NULL DEFAULT '[]',
    leader_name     TEXT,
    leader_phone    TEXT,
    contact_name    TEXT,
    contact_phone   TEXT,
    filing_status   TEXT NOT NULL CHECK (filing_status IN ('submitted', 'approved', 'rejected', 'suspended', 'revoked')),
    status_reason   TEXT,
    submitted_by    TEXT NOT NULL,
    submitted_at    TIMESTAMPTZ NOT NULL,
    decided_by      TEXT,
    decided_at      TIMESTAMPTZ,
    approved_by     TEXT,
    approved_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX teams_region ON teams (region_code, code);
CREATE INDEX teams_status ON teams (filing_status, region_code);
CREATE INDEX teams_location ON teams (lat, lon);

CREATE TABLE team_specialties (
    team_id   BIGINT NOT NULL REFERENCES teams (id),
    specialty TEXT NOT NULL,
    grade     BIGINT CHECK (grade IN (1, 2, 3)),
    position  BIGINT NOT NULL,
    PRIMARY KEY (team_id, specialty)
);
CREATE INDEX team_specialties_specialty ON team_specialties (specialty, team_id);

CREATE TABLE members (
    id             BIGSERIAL PRIMARY KEY,
    team_id        BIGINT NOT NULL REFERENCES teams (id),
    name           TEXT NOT NULL,
    id_number      TEXT,
    id_index       TEXT,
    phone          TEXT,
    status         TEXT NOT NULL CHECK (status IN ('available', 'deployed', 'unavailable', 'retired')),
    temp_callup_id BIGINT,
    anonymised_at  TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX members_team_person ON members (team_id, id_index);
CREATE INDEX members_team_status ON members (team_id, status);
CREATE INDEX members_temp_callup ON members (temp_callup_id);
CREATE INDEX members_id_index ON members (id_index);

CREATE TABLE member_skills (
    member_id BIGINT NOT NULL REFERENCES members (id),
    specialty TEXT NOT NULL,
    PRIMARY KEY (member_id, specialty)
);
CREATE INDEX member_skills_specialty ON member_skills (specialty, member_id);

CREATE TABLE member_certificates (
    id        BIGSERIAL PRIMARY KEY,
    member_id BIGINT NOT NULL REFERENCES members (id),
    kind      TEXT NOT NULL,
    number    TEXT NOT NULL,
    issued    DATE NOT NULL,
    expires   DATE
);
CREATE INDEX member_certificates_member ON member_certificates (member_id);

CREATE TABLE member_insurance (
    id            BIGSERIAL PRIMARY KEY,
    member_id     BIGINT NOT NULL REFERENCES members (id),
    insurer       TEXT NOT NULL,
    policy_number TEXT NOT NULL,
    start_date    DATE NOT NULL,
    end_date      DATE NOT NULL,
    UNIQUE (member_id, policy_number)
);
CREATE INDEX member_insurance_valid ON member_insurance (member_id, start_date, end_date);

CREATE TABLE callups (
    id                   BIGSERIAL PRIMARY KEY,
    team_id              BIGINT NOT NULL REFERENCES teams (id),
    region_code          TEXT NOT NULL,
    purpose              TEXT NOT NULL CHECK (purpose IN ('event', 'drill')),
    reference            TEXT NOT NULL,
    specialty            TEXT NOT NULL,
    headcount            BIGINT NOT NULL CHECK (headcount > 0),
    report_at            TIMESTAMPTZ NOT NULL,
    report_place         TEXT NOT NULL,
    report_lon           DOUBLE PRECISION,
    report_lat           DOUBLE PRECISION,
    note                 TEXT,
    status               TEXT NOT NULL CHECK (status IN ('requested', 'accepted', 'declined', 'closed')),
    requested_by         TEXT NOT NULL,
    requested_at         TIMESTAMPTZ NOT NULL,
    responded_by         TEXT,
    responded_at         TIMESTAMPTZ,
    decline_reason       TEXT,
    closed_by            TEXT,
    closed_at            TIMESTAMPTZ,
    retention_assessment TEXT,
    retention_by         TEXT,
    retention_at         TIMESTAMPTZ
);
CREATE INDEX callups_team ON callups (team_id, id);
CREATE INDEX callups_region ON callups (region_code, status, id);

CREATE TABLE callup_members (
    callup_id BIGINT NOT NULL REFERENCES callups (id),
    member_id BIGINT NOT NULL REFERENCES members (id),
    hours     DOUBLE PRECISION,
    PRIMARY KEY (callup_id, member_id)
);
CREATE INDEX callup_members_member ON callup_members (member_id, callup_id);

CREATE TABLE compensation_claims (
    id             BIGSERIAL PRIMARY KEY,
    callup_id      BIGINT NOT NULL UNIQUE REFERENCES callups (id),
    labour_fen     BIGINT NOT NULL CHECK (labour_fen >= 0),
    transport_fen  BIGINT NOT NULL CHECK (transport_fen >= 0),
    supplies_fen   BIGINT NOT NULL CHECK (supplies_fen >= 0),
    equipment_fen  BIGINT NOT NULL CHECK (equipment_fen >= 0),
    note           TEXT,
    status         TEXT NOT NULL CHECK (status IN ('claimed', 'approved', 'paid')),
    claimed_by     TEXT NOT NULL,
    claimed_at     TIMESTAMPTZ NOT NULL,
    approved_by    TEXT,
    approved_at    TIMESTAMPTZ,
    paid_by        TEXT,
    paid_at        TIMESTAMPTZ,
    payment_ref    TEXT
);
