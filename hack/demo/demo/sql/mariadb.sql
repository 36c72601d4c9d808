-- The shop's newsletter in MariaDB, for {{.Users}} users: four in five
-- subscribed, with about six engagement events each over two years. Ages are
-- whole days plus at most 22 hours, as in the PostgreSQL data.
CREATE DATABASE {{.Database}} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE {{.Database}};

CREATE TABLE newsletter_subscribers (
  id             BIGINT PRIMARY KEY,
  user_id        BIGINT NULL,
  email          VARCHAR(255) NOT NULL,
  phone          VARCHAR(32) NULL,
  consent_source VARCHAR(32) NOT NULL,
  subscribed_at  DATETIME NOT NULL,
  KEY (user_id),
  KEY (email)
) ENGINE = InnoDB;

CREATE TABLE email_events (
  id            BIGINT AUTO_INCREMENT PRIMARY KEY,
  subscriber_id BIGINT NOT NULL,
  email         VARCHAR(255) NOT NULL,
  event         VARCHAR(16) NOT NULL,
  campaign      VARCHAR(64) NOT NULL,
  ip_address    VARCHAR(45) NULL,
  created_at    DATETIME NOT NULL,
  KEY (created_at),
  KEY (email),
  CONSTRAINT fk_email_events_subscriber FOREIGN KEY (subscriber_id) REFERENCES newsletter_subscribers (id)
) ENGINE = InnoDB;

INSERT INTO newsletter_subscribers (id, user_id, email, phone, consent_source, subscribed_at)
SELECT seq, 100000 + seq, CONCAT('user', 100000 + seq, '@example.com'),
  CONCAT('+86', ELT(1 + FLOOR(RAND() * 4), '138', '139', '186', '188'), LPAD(FLOOR(RAND() * 100000000), 8, '0')),
  ELT(1 + seq % 3, 'signup', 'checkout', 'popup'),
  UTC_TIMESTAMP() - INTERVAL (30 + FLOOR(RAND() * 700)) DAY - INTERVAL FLOOR(RAND() * 79200) SECOND
FROM seq_1_to_{{.Users}}
WHERE seq % 5 <> 0 OR 100000 + seq IN (100042, 100271);

UPDATE newsletter_subscribers SET email = 'ada@example.com', phone = '+8613800138000' WHERE user_id = 100042;

INSERT INTO email_events (subscriber_id, email, event, campaign, ip_address, created_at)
SELECT s.id, s.email, ELT(1 + FLOOR(RAND() * 3), 'sent', 'open', 'click'),
  ELT(1 + FLOOR(RAND() * 4), 'double-11', 'spring-sale', 'weekly-picks', 'new-arrivals'),
  CONCAT(36 + FLOOR(RAND() * 180), '.', FLOOR(RAND() * 256), '.', FLOOR(RAND() * 256), '.', 1 + FLOOR(RAND() * 254)),
  UTC_TIMESTAMP() - INTERVAL FLOOR(RAND() * 730) DAY - INTERVAL FLOOR(RAND() * 79200) SECOND
FROM newsletter_subscribers AS s JOIN seq_1_to_6;

ANALYZE TABLE newsletter_subscribers, email_events;
