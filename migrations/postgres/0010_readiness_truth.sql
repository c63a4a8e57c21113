-- Readiness that tells the truth (issue 12).
-- Certificates are a history per member: a renewal adds a certificate and marks the old one
-- `renewed`; a revocation marks it `revoked`; nothing is deleted except when a temporary
-- volunteer's personal data is erased. One number per member.
ALTER TABLE member_certificates ADD COLUMN status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'renewed', 'revoked'));
ALTER TABLE member_certificates ADD COLUMN renewed_by TEXT;
ALTER TABLE member_certificates ADD COLUMN revoked_reason TEXT;
ALTER TABLE member_certificates ADD COLUMN revoked_at TIMESTAMPTZ;
CREATE UNIQUE INDEX member_certificates_number ON member_certificates (member_id, number);

-- Channel rate limits count each channel's attempts in the last minute.
CREATE INDEX delivery_attempts_at ON delivery_attempts (at, outbox_id);
