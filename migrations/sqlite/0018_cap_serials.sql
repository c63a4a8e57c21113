-- Serial numbers of the CAP identifiers of warnings issued here, per issuing unit and second
-- (GB/T 35965.1 appendix A.1.1: `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`, N from 0). One row per unit and
-- second, counted by an upsert whose row lock also makes two issuers in the same second wait
-- for each other.
CREATE TABLE cap_serials (
    unit_second TEXT PRIMARY KEY,
    last        INTEGER NOT NULL
);
