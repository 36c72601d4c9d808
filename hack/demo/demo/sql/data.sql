-- Sample data for {{.Users}} users, generated inside PostgreSQL in one
-- transaction (generate_series, no per-row round trips).
--
-- Ages: a record is dated now() minus a whole number of days plus at most
-- 22 hours. Every retention period is a whole number of days (or calendar
-- months in UTC), so no record lies within two hours before a boundary: the
-- "past its retention period" counts the demo prints cannot change while it
-- runs, and equal what Lethe, with its own cutoffs, selects.

SET TimeZone = 'UTC';
SELECT setseed(0.4242);

-- pg_temp.ago(max_days, skew): an age below max_days; skew > 1 favours
-- recent records (a growing shop).
CREATE FUNCTION pg_temp.ago(max_days int, skew float8) RETURNS interval
LANGUAGE sql VOLATILE AS $$
  SELECT make_interval(days => floor(max_days * power(random(), skew))::int, secs => random() * 79200)
$$;

-- pg_temp.pick(arr): a random element.
CREATE FUNCTION pg_temp.pick(arr text[]) RETURNS text
LANGUAGE sql VOLATILE AS $$
  SELECT arr[1 + floor(random() * array_length(arr, 1))::int]
$$;

-- pg_temp.ip(): a client address, 80% IPv4 (last octet never 0), 20% IPv6
-- (last group never 0), so a generalized address (/24, /48) is never an
-- original one.
CREATE FUNCTION pg_temp.ip() RETURNS inet
LANGUAGE sql VOLATILE AS $$
  SELECT CASE WHEN random() < 0.8 THEN
    format('%s.%s.%s.%s',
      pg_temp.pick('{1,14,27,36,39,42,49,58,59,60,61,101,106,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,171,175,180,182,183,202,203,210,211,218,219,220,221,222,223}'),
      floor(random() * 256)::int, floor(random() * 256)::int, 1 + floor(random() * 254)::int)::inet
  ELSE
    format('240e:%s:%s:%s::%s', to_hex(floor(random() * 65536)::int), to_hex(floor(random() * 65536)::int),
      to_hex(floor(random() * 65536)::int), to_hex(1 + floor(random() * 65535)::int))::inet
  END
$$;

CREATE FUNCTION pg_temp.address() RETURNS text
LANGUAGE sql VOLATILE AS $$
  SELECT format('Room %s, No. %s %s, %s', 101 + floor(random() * 2800)::int, 1 + floor(random() * 399)::int,
    pg_temp.pick('{"Nanjing West Road","Huaihai Middle Road","Zhongshan North Road","Jianguo Road","Renmin South Road","Tianhe Road","Wensan Road","Chaoyang North Road"}'),
    pg_temp.pick('{"Jing''an District, Shanghai","Xuhui District, Shanghai","Chaoyang District, Beijing","Haidian District, Beijing","Tianhe District, Guangzhou","Nanshan District, Shenzhen","Xihu District, Hangzhou","Wuhou District, Chengdu"}'))
$$;

-- Browsing history partitions: one per month, from 14 months ago to next month.
DO $$
DECLARE
  m timestamp := date_trunc('month', (now() AT TIME ZONE 'Asia/Shanghai') - interval '420 days');
BEGIN
  WHILE m <= date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai') + interval '1 month' LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF browsing_logs FOR VALUES FROM (%L) TO (%L)',
      'browsing_logs_' || to_char(m, 'YYYY_MM'), m, m + interval '1 month');
    m := m + interval '1 month';
  END LOOP;
END $$;

INSERT INTO users (id, email, phone, national_id, display_name, birth_date, created_at)
SELECT id,
  'user' || id || '@' || pg_temp.pick('{example.com,example.net,example.org}'),
  '+86' || pg_temp.pick('{135,138,139,150,151,186,187,188}') || lpad(floor(random() * 100000000)::bigint::text, 8, '0'),
  pg_temp.pick('{110105,310104,440305,330106,510107,320102}') || to_char(birth, 'YYYYMMDD')
    || lpad(floor(random() * 1000)::int::text, 3, '0') || pg_temp.pick('{0,1,2,3,4,5,6,7,8,9,X}'),
  pg_temp.pick('{Wang,Li,Zhang,Liu,Chen,Yang,Huang,Zhao,Wu,Zhou,Xu,Sun}') || ' '
    || pg_temp.pick('{Wei,Fang,Na,Min,Jing,Lei,Jun,Yan,Tao,Ming,Xiu,Hui,Qiang,Ying}'),
  birth,
  now() - pg_temp.ago(1800, 1.4)
FROM (SELECT 100000 + g AS id, date '1962-01-01' + floor(random() * 15000)::int AS birth
      FROM generate_series(1, {{.Users}}) AS g) AS s;

-- One or two devices per user; 72% seen in the last 90 days.
INSERT INTO devices (user_id, device_id, ip_address, user_agent, first_seen_at, last_seen_at)
SELECT user_id, md5('device/' || user_id || '/' || k)::uuid::text, pg_temp.ip(),
  pg_temp.pick('{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 ShopApp/8.4","Mozilla/5.0 (Linux; Android 14; 23127PN0CC) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36 ShopApp/8.4","Mozilla/5.0 (Linux; Android 13; V2227A) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36","Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/125.0 Safari/537.36","Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15"}'),
  last_seen - pg_temp.ago(400, 1.0), last_seen
FROM (SELECT u.id AS user_id, k,
        now() - CASE WHEN random() < 0.72 THEN pg_temp.ago(90, 1.0)
                     ELSE interval '90 days' + pg_temp.ago(640, 1.2) END AS last_seen
      FROM users AS u, generate_series(1, 1 + (u.id % 2)::int) AS k) AS s;

-- Twelve page views per user on average over the last 400 days.
INSERT INTO browsing_logs (user_id, device_id, ip_address, url, referrer, viewed_at)
SELECT uid, md5('device/' || uid || '/1')::uuid::text, pg_temp.ip(),
  pg_temp.pick('{/,/search,/cart,/checkout,/account/orders,/category/phones,/category/home,/category/beauty,/category/books}')
    || CASE WHEN random() < 0.6 THEN '/product/' || (10000 + floor(random() * 90000)::int) ELSE '' END,
  CASE WHEN random() < 0.5 THEN pg_temp.pick('{https://www.baidu.com/,https://weixin.qq.com/,https://www.douyin.com/,https://www.xiaohongshu.com/}') END,
  (now() AT TIME ZONE 'Asia/Shanghai') - pg_temp.ago(400, 1.0)
FROM (SELECT 100001 + floor(random() * {{.Users}})::int AS uid FROM generate_series(1, {{.Users}} * 12)) AS s;

-- Three orders per user on average over four years, more of them recent.
-- Items first (the foreign keys come after the load), so that each order is
-- written once, with its totals.
CREATE TEMPORARY TABLE new_orders ON COMMIT DROP AS
SELECT 5000000 + g AS id, u.id AS user_id, 'SO' || to_char(created, 'YYYYMMDD') || lpad(g::text, 7, '0') AS order_no,
  CASE WHEN created > now() - interval '3 days' THEN 'paid' WHEN g % 25 = 0 THEN 'refunded' ELSE 'delivered' END AS status,
  u.display_name AS shipping_name, u.phone AS shipping_phone, pg_temp.address() AS shipping_address, pg_temp.ip() AS buyer_ip,
  created AS created_at, CASE WHEN g % 40 <> 0 THEN created + make_interval(mins => 1 + g % 30) END AS paid_at
FROM (SELECT g, 100001 + floor(random() * {{.Users}})::int AS uid, now() - pg_temp.ago(1460, 1.6) AS created
      FROM generate_series(1, {{.Users}} * 3) AS g) AS s
JOIN users AS u ON u.id = s.uid;

INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price_cents, gift_message, created_at)
SELECT o.id, l, 'SKU-' || (10000 + floor(random() * 90000)::int), 1 + floor(random() * 3)::int,
  (990 + floor(random() * 49000)::int),
  CASE WHEN random() < 0.04 THEN pg_temp.pick('{"Happy birthday, Mei!","For Grandma, with love","Congratulations on the new job!","Sorry I missed your wedding"}') END,
  o.created_at
FROM new_orders AS o, generate_series(1, 1 + (o.id % 3)::int) AS l;

INSERT INTO orders (id, user_id, order_no, status, total_cents, vat_cents, shipping_name, shipping_phone, shipping_address, buyer_ip, created_at, paid_at)
SELECT o.id, o.user_id, o.order_no, o.status, t.total, round(t.total * 13 / 113.0), o.shipping_name, o.shipping_phone,
  o.shipping_address, o.buyer_ip, o.created_at, o.paid_at
FROM new_orders AS o
JOIN (SELECT order_id, sum(quantity * unit_price_cents) AS total FROM order_items GROUP BY order_id) AS t ON t.order_id = o.id;

-- One support conversation per two users, over two years; bodies carry
-- personal data, as they do.
INSERT INTO support_messages (user_id, contact_email, subject, body, created_at)
SELECT u.id, CASE WHEN random() < 0.9 THEN u.email ELSE 'alt.' || u.id || '@example.net' END,
  pg_temp.pick('{"Where is my parcel?","Refund request","Wrong size delivered","Cannot log in","Change my address"}'),
  format(pg_temp.pick('{"Hello, this is %s. My parcel has not arrived, please call me on %s.","Hi, I am %s and I want a refund. My phone is %s.","Dear support, %s here. Please change my delivery address; reach me at %s."}'),
    u.display_name, u.phone),
  now() - pg_temp.ago(730, 1.0)
FROM (SELECT 100001 + floor(random() * {{.Users}})::int AS uid FROM generate_series(1, {{.Users}} / 2)) AS s
JOIN users AS u ON u.id = s.uid;

-- The people the samples name.
-- 100042 cancels her account (DeletionRequest cancel-account-7f3a9c) and is
-- under legal hold case-2026-sh-0142 with 100317 and grace@example.com.
UPDATE users SET email = 'ada@example.com', phone = '+8613800138000', display_name = 'Ada Lin' WHERE id = 100042;
UPDATE users SET email = 'grace@example.com', display_name = 'Grace Zhou' WHERE id = 100318;
-- 100271 turns out to be 14 years old (DeletionRequest minor-5c1e2d).
UPDATE users SET display_name = 'Xiao Ming', birth_date = (now() - interval '14 years 3 months')::date,
  national_id = '310104' || to_char(now() - interval '14 years 3 months', 'YYYYMMDD') || '0172' WHERE id = 100271;

-- Held subjects own records past their retention period, so the hold shows.
INSERT INTO orders (id, user_id, order_no, status, shipping_name, shipping_phone, shipping_address, buyer_ip, created_at, paid_at)
SELECT 4000000 + n, uid, 'SO' || to_char(created, 'YYYYMMDD') || 'H' || n, 'delivered',
  u.display_name, u.phone, pg_temp.address(), pg_temp.ip(), created, created + interval '3 minutes'
FROM (VALUES (1, 100042, now() - interval '3 years 40 days'), (2, 100042, now() - interval '3 years 200 days'),
             (3, 100317, now() - interval '3 years 300 days'), (4, 100042, now() - interval '400 days')) AS v(n, uid, created)
JOIN users AS u ON u.id = v.uid;
INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price_cents, created_at)
SELECT id, 1, 'SKU-20417', 1, 25900, created_at FROM orders WHERE id BETWEEN 4000001 AND 4000004;
INSERT INTO support_messages (user_id, contact_email, subject, body, created_at)
SELECT u.id, u.email, 'Payment dispute', format('This is %s. I was charged twice for order 4000001; call me on %s.', u.display_name, u.phone), now() - v.age
FROM (VALUES (100042, interval '400 days'), (100318, interval '300 days'), (100318, interval '20 days')) AS v(uid, age)
JOIN users AS u ON u.id = v.uid;

-- The minor's data, recent and old.
INSERT INTO browsing_logs (user_id, device_id, ip_address, url, viewed_at)
SELECT 100271, md5('device/100271/1')::uuid::text, pg_temp.ip(), '/category/games/product/' || (20000 + g),
  (now() AT TIME ZONE 'Asia/Shanghai') - make_interval(days => g * 7)
FROM generate_series(1, 6) AS g;
INSERT INTO orders (id, user_id, order_no, status, shipping_name, shipping_phone, shipping_address, buyer_ip, created_at, paid_at)
SELECT 4000010 + n, 100271, 'SO' || to_char(now() - make_interval(days => n * 30), 'YYYYMMDD') || 'M' || n, 'delivered',
  'Xiao Ming', u.phone, pg_temp.address(), pg_temp.ip(), now() - make_interval(days => n * 30), now() - make_interval(days => n * 30)
FROM generate_series(1, 2) AS n, users AS u WHERE u.id = 100271;
INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price_cents, gift_message, created_at)
SELECT id, 1, 'SKU-31337', 1, 9900, 'for my best friend', created_at FROM orders WHERE id IN (4000011, 4000012);
INSERT INTO support_messages (user_id, contact_email, subject, body, created_at)
SELECT id, email, 'Cannot log in', 'Hi, I am Xiao Ming, I am 14 and I forgot my password.', now() - interval '10 days'
FROM users WHERE id = 100271;
