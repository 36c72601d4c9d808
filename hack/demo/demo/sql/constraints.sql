-- Foreign keys and indexes, created after the load (faster than checking
-- every inserted row). Lethe reads the foreign keys to erase children before
-- parents.
ALTER TABLE devices ADD FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE browsing_logs ADD FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE support_messages ADD FOREIGN KEY (user_id) REFERENCES users (id);

CREATE INDEX ON devices (user_id);
CREATE INDEX ON devices (last_seen_at);
CREATE INDEX ON browsing_logs (user_id);
CREATE INDEX ON browsing_logs (viewed_at);
CREATE INDEX ON orders (user_id);
CREATE INDEX ON orders (created_at);
CREATE INDEX ON order_items (created_at);
CREATE INDEX ON support_messages (user_id);
CREATE INDEX ON support_messages (contact_email);
CREATE INDEX ON support_messages (created_at);

ANALYZE;
