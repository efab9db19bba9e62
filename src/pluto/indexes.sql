-- Indexes created after bulk loading (faster than maintaining them during COPY).
CREATE INDEX businesses_name_trgm ON businesses USING gin (name gin_trgm_ops);
CREATE INDEX businesses_name_prefix ON businesses (lower(name) text_pattern_ops);
CREATE INDEX businesses_created ON businesses (created_at DESC, id);
CREATE INDEX users_email_lower ON users (lower(email) text_pattern_ops);
CREATE INDEX users_phone_digits_rev ON users (reverse(phone_digits) text_pattern_ops);
CREATE INDEX memberships_user ON memberships (user_id);
CREATE INDEX bank_connections_business ON bank_connections (business_id);
CREATE INDEX bank_accounts_business ON bank_accounts (business_id);
CREATE INDEX transactions_business_posted ON transactions (business_id, posted_at, id);
CREATE INDEX receipts_business_created ON receipts (business_id, created_at, id);
CREATE INDEX invoices_business_created ON invoices (business_id, created_at, id);
CREATE INDEX trips_business_started ON trips (business_id, started_at, id);
CREATE INDEX trip_points_business ON trip_points (business_id);
CREATE INDEX shifts_business_starts ON shifts (business_id, starts_at, id);
CREATE INDEX payroll_business_paid ON payroll_entries (business_id, paid_at, id);
-- Record tabs: keyset pages by amount, and the tabs without a date index.
CREATE INDEX transactions_business_amount ON transactions (business_id, amount_cents, id);
CREATE INDEX receipts_business_amount ON receipts (business_id, amount_cents, id);
CREATE INDEX invoices_business_amount ON invoices (business_id, amount_cents, id);
CREATE INDEX trips_business_distance ON trips (business_id, distance_m, id);
CREATE INDEX payroll_business_gross ON payroll_entries (business_id, gross_cents, id);
CREATE INDEX memberships_business_created ON memberships (business_id, created_at, user_id);
CREATE INDEX bank_connections_business_created ON bank_connections (business_id, created_at, id);
-- Data-subject erasure (docs/erasure.md): the subject links of the data map
-- are looked up by user id or e-mail, and free text is searched for the
-- subject's e-mail and name (ILIKE '%…%', served by trigram indexes).
CREATE INDEX receipts_uploaded_by ON receipts (uploaded_by);
CREATE INDEX trips_user ON trips (user_id);
CREATE INDEX shifts_user ON shifts (user_id);
CREATE INDEX payroll_user ON payroll_entries (user_id);
CREATE INDEX bank_connections_created_by ON bank_connections (created_by);
CREATE INDEX invoices_customer_email_lower ON invoices (lower(customer_email));
CREATE INDEX receipts_ocr_trgm ON receipts USING gin (ocr_text gin_trgm_ops);
CREATE INDEX receipts_notes_trgm ON receipts USING gin (notes gin_trgm_ops);
CREATE INDEX transactions_merchant_trgm ON transactions USING gin (merchant gin_trgm_ops);
CREATE INDEX transactions_description_trgm ON transactions USING gin (description gin_trgm_ops);
CREATE INDEX trips_purpose_trgm ON trips USING gin (purpose gin_trgm_ops);
CREATE INDEX shifts_notes_trgm ON shifts USING gin (notes gin_trgm_ops);
ANALYZE;
