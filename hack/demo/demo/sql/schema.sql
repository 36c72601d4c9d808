-- The "shop" app: a consumer web shop in mainland China (phone numbers,
-- resident ID numbers, Beijing time in the clickstream). This is the schema
-- that config/samples/retention_v1alpha1_dataset.yaml maps.

CREATE TABLE users (
  id           bigint PRIMARY KEY,
  email        text NOT NULL UNIQUE,
  phone        text NOT NULL,
  national_id  text,                        -- resident identity card number
  display_name text NOT NULL,
  birth_date   date,
  created_at   timestamptz NOT NULL
);

-- Devices a user signed in from.
CREATE TABLE devices (
  id            bigserial PRIMARY KEY,
  user_id       bigint NOT NULL,            -- REFERENCES users (added after the load)
  device_id     text NOT NULL,              -- advertising / vendor identifier
  ip_address    inet,
  user_agent    text,
  first_seen_at timestamptz NOT NULL,
  last_seen_at  timestamptz NOT NULL
);

-- Clickstream, partitioned by month; viewed_at is Beijing wall-clock time.
CREATE TABLE browsing_logs (
  id         bigserial,
  user_id    bigint,
  device_id  text,
  ip_address inet,
  url        text NOT NULL,
  referrer   text,
  viewed_at  timestamp without time zone NOT NULL,
  PRIMARY KEY (id, viewed_at)
) PARTITION BY RANGE (viewed_at);

-- Orders are kept for tax law; the buyer's personal data is not.
CREATE TABLE orders (
  id               bigint PRIMARY KEY,
  user_id          bigint,                  -- nullable: anonymization unlinks the buyer
  order_no         text NOT NULL UNIQUE,
  status           text NOT NULL,
  currency         text NOT NULL DEFAULT 'CNY',
  total_cents      bigint NOT NULL DEFAULT 0,
  vat_cents        bigint NOT NULL DEFAULT 0,
  shipping_name    text,
  shipping_phone   text,
  shipping_address text,
  buyer_ip         inet,
  created_at       timestamptz NOT NULL,
  paid_at          timestamptz
);

CREATE TABLE order_items (
  order_id         bigint NOT NULL,
  line_no          int NOT NULL,
  sku              text NOT NULL,
  quantity         int NOT NULL,
  unit_price_cents bigint NOT NULL,
  gift_message     text,
  created_at       timestamptz NOT NULL,
  PRIMARY KEY (order_id, line_no)
);

CREATE TABLE support_messages (
  id            bigserial PRIMARY KEY,
  user_id       bigint,
  contact_email text,
  subject       text NOT NULL,
  body          text NOT NULL,
  created_at    timestamptz NOT NULL
);
