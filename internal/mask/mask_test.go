package mask

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // DST tests must not depend on the machine's zoneinfo
)

var (
	key  = []byte("0123456789abcdef")            // 16 bytes: the minimum
	key2 = []byte("fedcba9876543210fedcba98765") // another key
	// RFC 4231 test case 1: key 0x0b×20, data "Hi There".
	rfcKey  = []byte(strings.Repeat("\x0b", 20))
	rfcHex  = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
	utc     = time.UTC
	shangha = time.FixedZone("+08", 8*3600)
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type applyCase struct {
	name    string
	s       Strategy
	col     Column
	in      any
	want    any
	wantErr error // ErrInvalidStrategy or ErrInvalidValue
}

func runApply(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.s.Apply(c.in, c.col)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("Apply() error = %v, want %v", err, c.wantErr)
				}
				if got != nil {
					t.Errorf("Apply() = %#v with an error, want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply() unexpected error: %v", err)
			}
			if !equal(got, c.want) {
				t.Errorf("Apply() = %#v (%T), want %#v (%T)", got, got, c.want, c.want)
			}
		})
	}
}

// equal compares results, times by instant and location name.
func equal(got, want any) bool {
	if g, ok := got.(time.Time); ok {
		w, ok := want.(time.Time)
		return ok && g.Equal(w) && g.Location().String() == w.Location().String()
	}
	return reflect.DeepEqual(got, want)
}

func TestNull(t *testing.T) {
	nullable := func(ct ColumnType) Column { return Column{Type: ct, Nullable: true} }
	runApply(t, []applyCase{
		{"text", Strategy{Kind: Null}, nullable(Text), "ada", nil, nil},
		{"nil", Strategy{Kind: Null}, nullable(Text), nil, nil, nil},
		{"bytes", Strategy{Kind: Null}, nullable(Bytes), []byte("ada"), nil, nil},
		{"timestamp", Strategy{Kind: Null}, nullable(Timestamp), time.Now(), nil, nil},
		{"date", Strategy{Kind: Null}, nullable(Date), time.Now(), nil, nil},
		{"ip", Strategy{Kind: Null}, nullable(IP), netip.MustParseAddr("203.0.113.7"), nil, nil},
		{"other", Strategy{Kind: Null}, nullable(Other), int64(42), nil, nil},
		{"not nullable", Strategy{Kind: Null}, Column{Type: Text}, "ada", nil, ErrInvalidStrategy},
		{"not nullable nil", Strategy{Kind: Null}, Column{Type: Text}, nil, nil, ErrInvalidStrategy},
	})
}

func TestFixed(t *testing.T) {
	fixed := func(r string) Strategy { return Strategy{Kind: Fixed, Replacement: r} }
	epoch := time.Date(1970, 1, 1, 0, 0, 0, 0, utc)
	runApply(t, []applyCase{
		{"text", fixed("deleted"), Column{Type: Text}, "ada@example.com", "deleted", nil},
		{"text nil", fixed("deleted"), Column{Type: Text}, nil, "deleted", nil},
		{"text empty replacement", fixed(""), Column{Type: Text}, "ada", "", nil},
		{"text truncated", fixed("deleted"), Column{Type: Text, MaxLength: 3}, "ada", "del", nil},
		{"text maxlength 1", fixed("deleted"), Column{Type: Text, MaxLength: 1}, "ada", "d", nil},
		{"text multibyte truncated", fixed("张三李四"), Column{Type: Text, MaxLength: 2}, "ada", "张三", nil},
		{"text emoji truncated", fixed("😀😀x"), Column{Type: Text, MaxLength: 1}, "ada", "😀", nil},
		{"text as bytes", fixed("deleted"), Column{Type: Text}, []byte("ada"), []byte("deleted"), nil},
		{"text other go type", fixed("deleted"), Column{Type: Text}, 42, "deleted", nil},
		{"text invalid utf8 replacement", fixed("a\xffb"), Column{Type: Text}, "ada", nil, ErrInvalidStrategy},
		{"bytes nil", fixed("xx"), Column{Type: Bytes}, nil, []byte("xx"), nil},
		{"bytes", fixed("xx"), Column{Type: Bytes}, []byte{1, 2, 3}, []byte("xx"), nil},
		{"bytes truncated by byte", fixed("张三"), Column{Type: Bytes, MaxLength: 4}, []byte{1}, []byte("张\xe4"), nil},
		{"timestamp", fixed("1970-01-01T00:00:00Z"), Column{Type: Timestamp}, time.Now(), epoch, nil},
		{"timestamp nil", fixed("1970-01-01T00:00:00Z"), Column{Type: Timestamp}, nil, epoch, nil},
		{"timestamp date only", fixed("1970-01-01"), Column{Type: Timestamp}, time.Now(), epoch, nil},
		{"timestamp with offset", fixed("1970-01-01T08:00:00+08:00"), Column{Type: Timestamp}, time.Now(),
			time.Date(1970, 1, 1, 8, 0, 0, 0, time.FixedZone("", 8*3600)), nil},
		{"timestamp as string", fixed("1970-01-01T00:00:00Z"), Column{Type: Timestamp}, "2024-05-17T13:45:00Z", "1970-01-01T00:00:00Z", nil},
		{"timestamp as bytes", fixed("1970-01-01 00:00:00"), Column{Type: Timestamp}, []byte("2024-05-17 13:45:00"), []byte("1970-01-01 00:00:00"), nil},
		{"timestamp text keeps its layout", fixed("1970-01-01T00:00:00Z"), Column{Type: Timestamp}, []byte("2024-05-17 13:45:00"), []byte("1970-01-01 00:00:00"), nil},
		{"timestamp text keeps its offset layout", fixed("1970-01-01T08:00:00+08:00"), Column{Type: Timestamp}, "2024-05-17 13:45:00+02", "1970-01-01 08:00:00+08", nil},
		{"timestamp unknown text layout", fixed("1970-01-01T00:00:00Z"), Column{Type: Timestamp}, "17/05/2024", "1970-01-01T00:00:00Z", nil},
		{"date text", fixed("1970-01-01"), Column{Type: Date}, "2024-05-17", "1970-01-01", nil},
		{"timestamp bad replacement", fixed("yesterday"), Column{Type: Timestamp}, time.Now(), nil, ErrInvalidStrategy},
		{"timestamp empty replacement", fixed(""), Column{Type: Timestamp}, time.Now(), nil, ErrInvalidStrategy},
		{"timestamp padded replacement", fixed(" 1970-01-01"), Column{Type: Timestamp}, time.Now(), nil, ErrInvalidStrategy},
		{"timestamp unsupported go type", fixed("1970-01-01"), Column{Type: Timestamp}, int64(0), nil, ErrInvalidValue},
		{"date", fixed("1970-01-01"), Column{Type: Date}, time.Now(), epoch, nil},
		{"date rejects a timestamp", fixed("1970-01-01T00:00:00Z"), Column{Type: Date}, time.Now(), nil, ErrInvalidStrategy},
		{"ip addr", fixed("0.0.0.0"), Column{Type: IP}, netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("0.0.0.0"), nil},
		{"ip prefix", fixed("::"), Column{Type: IP}, netip.MustParsePrefix("2001:db8::1/64"), netip.MustParsePrefix("::/128"), nil},
		{"ip string", fixed("0.0.0.0"), Column{Type: IP}, "203.0.113.7", "0.0.0.0", nil},
		{"ip nil", fixed("0.0.0.0"), Column{Type: IP}, nil, "0.0.0.0", nil},
		{"ip bytes", fixed("0.0.0.0"), Column{Type: IP}, []byte("203.0.113.7"), []byte("0.0.0.0"), nil},
		{"ip bad replacement", fixed("nowhere"), Column{Type: IP}, "203.0.113.7", nil, ErrInvalidStrategy},
		{"ip replacement too long", fixed("0.0.0.0"), Column{Type: IP, MaxLength: 6}, "1.2.3.4", nil, ErrInvalidStrategy},
		{"ip unsupported go type", fixed("0.0.0.0"), Column{Type: IP}, 42, nil, ErrInvalidValue},
		{"other", fixed("0"), Column{Type: Other}, int64(42), "0", nil},
		{"other json bytes", fixed("{}"), Column{Type: Other}, []byte(`{"a":1}`), []byte("{}"), nil},
		{"other never truncated", fixed("100"), Column{Type: Other, MaxLength: 2}, int64(42), nil, ErrInvalidStrategy},
	})
}

func TestRedact(t *testing.T) {
	redact := Strategy{Kind: Redact}
	text := Column{Type: Text}
	runApply(t, []applyCase{
		{"ascii", redact, text, "ada", "***", nil},
		{"empty", redact, text, "", "", nil},
		{"nil", redact, text, nil, nil, nil},
		{"chinese", redact, text, "张三", "**", nil},
		{"emoji", redact, text, "😀x", "**", nil},
		{"zwj sequence counts runes", redact, text, "👩‍💻", "***", nil},
		{"mask char", Strategy{Kind: Redact, MaskChar: 'X'}, text, "ada", "XXX", nil},
		{"multibyte mask char", Strategy{Kind: Redact, MaskChar: '■'}, text, "ada", "■■■", nil},
		{"maxlength 1", redact, Column{Type: Text, MaxLength: 1}, "ada", "*", nil},
		{"invalid utf8", redact, text, "a\xffb", "***", nil},
		{"text as bytes", redact, text, []byte("张三"), []byte("**"), nil},
		{"bytes", redact, Column{Type: Bytes}, []byte{0, 1, 0xff}, []byte("***"), nil},
		{"bytes count bytes", redact, Column{Type: Bytes}, []byte("张"), []byte("***"), nil},
		{"bytes maxlength", redact, Column{Type: Bytes, MaxLength: 2}, []byte{0, 1, 0xff}, []byte("**"), nil},
		{"bytes as string", redact, Column{Type: Bytes}, "张", "***", nil},
		{"bytes non-ascii mask", Strategy{Kind: Redact, MaskChar: '■'}, Column{Type: Bytes}, []byte{1}, nil, ErrInvalidStrategy},
		{"control mask char", Strategy{Kind: Redact, MaskChar: '\n'}, text, "ada", nil, ErrInvalidStrategy},
		{"invalid mask char", Strategy{Kind: Redact, MaskChar: 0xD800}, text, "ada", nil, ErrInvalidStrategy},
		{"negative mask char", Strategy{Kind: Redact, MaskChar: -1}, text, "ada", nil, ErrInvalidStrategy},
		{"timestamp", redact, Column{Type: Timestamp}, time.Now(), nil, ErrInvalidStrategy},
		{"date", redact, Column{Type: Date}, time.Now(), nil, ErrInvalidStrategy},
		{"ip", redact, Column{Type: IP}, "203.0.113.7", nil, ErrInvalidStrategy},
		{"other", redact, Column{Type: Other}, int64(1), nil, ErrInvalidStrategy},
		{"unsupported go type", redact, text, 42, nil, ErrInvalidValue},
	})
}

func TestHMAC(t *testing.T) {
	h := Strategy{Kind: HMAC, Key: rfcKey}
	text := Column{Type: Text}
	mac := mustHex(t, rfcHex)
	runApply(t, []applyCase{
		{"rfc 4231 vector", h, text, "Hi There", rfcHex, nil},
		{"text as bytes", h, text, []byte("Hi There"), []byte(rfcHex), nil},
		{"maxlength", h, Column{Type: Text, MaxLength: 16}, "Hi There", rfcHex[:16], nil},
		{"maxlength above digest", h, Column{Type: Text, MaxLength: 255}, "Hi There", rfcHex, nil},
		{"maxlength too short", h, Column{Type: Text, MaxLength: 15}, "Hi There", nil, ErrInvalidStrategy},
		{"maxlength 1", h, Column{Type: Text, MaxLength: 1}, "Hi There", nil, ErrInvalidStrategy},
		{"empty stays empty", h, text, "", "", nil},
		{"nil", h, text, nil, nil, nil},
		{"bytes raw mac", h, Column{Type: Bytes}, []byte("Hi There"), mac, nil},
		{"bytes maxlength", h, Column{Type: Bytes, MaxLength: 8}, []byte("Hi There"), mac[:8], nil},
		{"bytes maxlength too short", h, Column{Type: Bytes, MaxLength: 7}, []byte("Hi There"), nil, ErrInvalidStrategy},
		{"bytes as string", h, Column{Type: Bytes}, "Hi There", string(mac), nil},
		{"no key", Strategy{Kind: HMAC}, text, "ada", nil, ErrInvalidStrategy},
		{"short key", Strategy{Kind: HMAC, Key: key[:15]}, text, "ada", nil, ErrInvalidStrategy},
		{"zero key is the empty key", Strategy{Kind: HMAC, Key: make([]byte, 64)}, text, "ada", nil, ErrInvalidStrategy},
		{"long zero key", Strategy{Kind: HMAC, Key: make([]byte, 100)}, text, "ada", nil, ErrInvalidStrategy},
		{"trailing zeros do not count", Strategy{Kind: HMAC, Key: append(bytes.Clone(key[:15]), 0, 0)}, text, "ada", nil, ErrInvalidStrategy},
		{"timestamp", h, Column{Type: Timestamp}, time.Now(), nil, ErrInvalidStrategy},
		{"ip", h, Column{Type: IP}, "203.0.113.7", nil, ErrInvalidStrategy},
		{"other", h, Column{Type: Other}, int64(1), nil, ErrInvalidStrategy},
	})
}

func TestHMACDeterministicAndKeyed(t *testing.T) {
	for _, in := range []string{"ada@example.com", "张三", "😀", "a\xffb"} {
		a1, _ := Strategy{Kind: HMAC, Key: key}.Apply(in, Column{Type: Text})
		a2, _ := Strategy{Kind: HMAC, Key: key}.Apply(in, Column{Type: Text})
		b, _ := Strategy{Kind: HMAC, Key: key2}.Apply(in, Column{Type: Text})
		short, _ := Strategy{Kind: HMAC, Key: key}.Apply(in, Column{Type: Text, MaxLength: 20})
		if a1 != a2 {
			t.Errorf("HMAC(%q) not deterministic", in)
		}
		if a1 == b {
			t.Errorf("HMAC(%q) equal under two keys", in)
		}
		if !strings.HasPrefix(a1.(string), short.(string)) {
			t.Errorf("truncated HMAC(%q) = %q is not a prefix of %q: not joinable", in, short, a1)
		}
	}
}

func TestPartialMask(t *testing.T) {
	pm := func(first, last int) Strategy { return Strategy{Kind: PartialMask, KeepFirst: first, KeepLast: last} }
	text := Column{Type: Text}
	runApply(t, []applyCase{
		{"phone", pm(3, 4), text, "13812341234", "138****1234", nil},
		{"keep first only", pm(1, 0), text, "张三丰", "张**", nil},
		{"keep last only", pm(0, 2), text, "ada@x", "***@x", nil},
		{"keep nothing", pm(0, 0), text, "ada", "***", nil},
		{"keeps equal length", pm(1, 1), text, "张三", "**", nil},
		{"keeps exceed length", pm(5, 5), text, "abc", "***", nil},
		{"keep first exceeds length", pm(9, 0), text, "abc", "***", nil},
		{"huge keeps do not overflow", pm(int(^uint(0)>>1), int(^uint(0)>>1)), text, "abc", "***", nil},
		{"one middle rune", pm(1, 1), text, "abc", "a*c", nil},
		{"emoji", pm(1, 1), text, "😀😀😀😀", "😀**😀", nil},
		{"empty", pm(3, 4), text, "", "", nil},
		{"nil", pm(3, 4), text, nil, nil, nil},
		{"invalid utf8 kept as U+FFFD", pm(1, 1), text, "\xffabc\xfe", "\uFFFD***\uFFFD", nil},
		{"mask char", Strategy{Kind: PartialMask, KeepFirst: 3, KeepLast: 4, MaskChar: '#'}, text, "13812341234", "138####1234", nil},
		{"maxlength truncates after masking", pm(3, 4), Column{Type: Text, MaxLength: 4}, "13812341234", "138*", nil},
		{"maxlength 1", pm(3, 4), Column{Type: Text, MaxLength: 1}, "13812341234", "1", nil},
		{"text as bytes", pm(1, 0), text, []byte("张三丰"), []byte("张**"), nil},
		{"bytes by byte", pm(1, 1), Column{Type: Bytes}, []byte{1, 2, 3, 4}, []byte{1, '*', '*', 4}, nil},
		{"negative", pm(-1, 0), text, "abc", nil, ErrInvalidStrategy},
		{"ip", pm(3, 0), Column{Type: IP}, "203.0.113.7", nil, ErrInvalidStrategy},
		{"timestamp", pm(3, 0), Column{Type: Timestamp}, time.Now(), nil, ErrInvalidStrategy},
	})
}

func TestGeneralizeTime(t *testing.T) {
	gen := func(g string) Strategy { return Strategy{Kind: Generalize, Granularity: g} }
	ts := Column{Type: Timestamp}
	in := time.Date(2024, 5, 17, 13, 45, 12, 500, utc)
	runApply(t, []applyCase{
		{"default day", gen(""), ts, in, time.Date(2024, 5, 17, 0, 0, 0, 0, utc), nil},
		{"day", gen("Day"), ts, in, time.Date(2024, 5, 17, 0, 0, 0, 0, utc), nil},
		{"month", gen("Month"), ts, in, time.Date(2024, 5, 1, 0, 0, 0, 0, utc), nil},
		{"year", gen("Year"), ts, in, time.Date(2024, 1, 1, 0, 0, 0, 0, utc), nil},
		{"own location", gen("Day"), ts, time.Date(2024, 5, 17, 1, 30, 0, 0, shangha), time.Date(2024, 5, 17, 0, 0, 0, 0, shangha), nil},
		{"already generalized", gen("Day"), ts, time.Date(2024, 5, 17, 0, 0, 0, 0, utc), time.Date(2024, 5, 17, 0, 0, 0, 0, utc), nil},
		{"zero time", gen("Year"), ts, time.Time{}, time.Time{}, nil},
		{"date", gen("Month"), Column{Type: Date}, time.Date(2024, 5, 17, 0, 0, 0, 0, utc), time.Date(2024, 5, 1, 0, 0, 0, 0, utc), nil},
		{"rfc3339", gen("Day"), ts, "2024-05-17T13:45:12.123+02:00", "2024-05-17T00:00:00+02:00", nil},
		{"rfc3339 utc", gen("Month"), ts, "2024-05-17T13:45:12Z", "2024-05-01T00:00:00Z", nil},
		{"sql layout", gen("Day"), ts, "2024-05-17 13:45:12", "2024-05-17 00:00:00", nil},
		{"sql layout with fraction", gen("Day"), ts, "2024-05-17 13:45:12.123456", "2024-05-17 00:00:00", nil},
		{"postgres text", gen("Day"), ts, "2024-05-17 13:45:12+02", "2024-05-17 00:00:00+02", nil},
		{"postgres text full offset", gen("Year"), ts, "2024-05-17 13:45:12+05:30", "2024-01-01 00:00:00+05:30", nil},
		{"bytes from mysql", gen("Day"), ts, []byte("2024-05-17 13:45:12"), []byte("2024-05-17 00:00:00"), nil},
		{"date text", gen("Month"), Column{Type: Date}, "2024-05-17", "2024-05-01", nil},
		{"date text padded", gen("Month"), Column{Type: Date}, "2024-05-17 ", "2024-05-01", nil},
		{"date rejects timestamp text", gen("Month"), Column{Type: Date}, "2024-05-17T10:00:00Z", nil, ErrInvalidValue},
		{"not a time", gen("Day"), ts, "last tuesday", nil, ErrInvalidValue},
		{"unsupported go type", gen("Day"), ts, int64(1715953512), nil, ErrInvalidValue},
		{"nil", gen("Day"), ts, nil, nil, nil},
		{"unknown granularity", gen("Week"), ts, in, nil, ErrInvalidStrategy},
		{"text", gen("Day"), Column{Type: Text}, "2024-05-17", nil, ErrInvalidStrategy},
		{"bytes", gen("Day"), Column{Type: Bytes}, []byte{1}, nil, ErrInvalidStrategy},
		{"other", gen("Day"), Column{Type: Other}, int64(1), nil, ErrInvalidStrategy},
	})
}

func TestGeneralizeDaylightSavingGap(t *testing.T) {
	// Brazil started daylight saving time at midnight on 2018-11-04: 00:00
	// did not exist, the day began at 01:00 -02.
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	in := time.Date(2018, 11, 4, 12, 0, 0, 0, sp)
	got, err := Strategy{Kind: Generalize}.Apply(in, Column{Type: Timestamp})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2018, 11, 4, 1, 0, 0, 0, sp)
	if g := got.(time.Time); !g.Equal(want) || g.Day() != 4 {
		t.Errorf("Generalize(%v) = %v, want %v", in, g, want)
	}
}

func TestGeneralizeIP(t *testing.T) {
	gen := Strategy{Kind: Generalize}
	ip := Column{Type: IP}
	addr := netip.MustParseAddr
	runApply(t, []applyCase{
		{"ipv4", gen, ip, addr("203.0.113.77"), addr("203.0.113.0"), nil},
		{"ipv4 string", gen, ip, "203.0.113.77", "203.0.113.0", nil},
		{"ipv4 bytes", gen, ip, []byte("203.0.113.77"), []byte("203.0.113.0"), nil},
		{"ipv4 padded char column", gen, ip, "203.0.113.77   ", "203.0.113.0", nil},
		{"ipv6", gen, ip, addr("2001:db8:1234:5678::1"), addr("2001:db8:1234::"), nil},
		{"ipv6 string", gen, ip, "2001:DB8:1234:5678:0:0:0:1", "2001:db8:1234::", nil},
		{"ipv4-mapped ipv6", gen, ip, addr("::ffff:203.0.113.77"), addr("::ffff:203.0.113.0"), nil},
		{"ipv4-mapped ipv6 string", gen, ip, "::ffff:203.0.113.77", "::ffff:203.0.113.0", nil},
		{"zone dropped", gen, ip, addr("fe80::1%eth0"), addr("fe80::"), nil},
		{"zone dropped string", gen, ip, "fe80::1%eth0", "fe80::", nil},
		{"prefix keeps length", gen, ip, netip.MustParsePrefix("203.0.113.77/16"), netip.MustParsePrefix("203.0.113.0/16"), nil},
		{"prefix host", gen, ip, netip.MustParsePrefix("2001:db8:1:2::9/128"), netip.MustParsePrefix("2001:db8:1::/128"), nil},
		{"prefix string", gen, ip, "10.1.2.3/8", "10.1.2.0/8", nil},
		{"granularity ignored", Strategy{Kind: Generalize, Granularity: "Year"}, ip, "203.0.113.77", "203.0.113.0", nil},
		{"longer than the column", gen, Column{Type: IP, MaxLength: 14}, "::ffff:a0a:a0a", nil, ErrInvalidValue},
		{"maxlength fits", gen, Column{Type: IP, MaxLength: 15}, "255.255.255.255", "255.255.255.0", nil},
		{"not an ip", gen, ip, "localhost", nil, ErrInvalidValue},
		{"bad prefix", gen, ip, "10.0.0.1/99", nil, ErrInvalidValue},
		{"empty", gen, ip, "", nil, ErrInvalidValue},
		{"zero addr", gen, ip, netip.Addr{}, nil, ErrInvalidValue},
		{"zero prefix", gen, ip, netip.Prefix{}, nil, ErrInvalidValue},
		{"unsupported go type", gen, ip, 42, nil, ErrInvalidValue},
		{"nil", gen, ip, nil, nil, nil},
	})
}

func TestUnknownKindAndColumn(t *testing.T) {
	runApply(t, []applyCase{
		{"empty kind", Strategy{}, Column{Type: Text}, "ada", nil, ErrInvalidStrategy},
		{"unknown kind", Strategy{Kind: "Shuffle"}, Column{Type: Text}, "ada", nil, ErrInvalidStrategy},
		{"unknown column type", Strategy{Kind: Redact}, Column{Type: 99}, "ada", nil, ErrInvalidStrategy},
		{"negative column type", Strategy{Kind: Redact}, Column{Type: -1}, "ada", nil, ErrInvalidStrategy},
		{"negative maxlength", Strategy{Kind: Redact}, Column{Type: Text, MaxLength: -1}, "ada", nil, ErrInvalidStrategy},
	})
}

func TestValidateMessages(t *testing.T) {
	cases := []struct {
		s    Strategy
		col  Column
		want string
	}{
		{Strategy{Kind: Null}, Column{Type: Text},
			"invalid anonymization strategy: Null cannot apply to a NOT NULL column; use HMAC, PartialMask, Redact or Fixed instead"},
		{Strategy{Kind: Null}, Column{Type: Timestamp},
			"invalid anonymization strategy: Null cannot apply to a NOT NULL column; use Generalize or Fixed instead"},
		{Strategy{Kind: Redact}, Column{Type: Timestamp, Nullable: true},
			"invalid anonymization strategy: Redact cannot apply to a Timestamp column; use Generalize, Fixed or Null instead"},
		{Strategy{Kind: Generalize}, Column{Type: Other},
			"invalid anonymization strategy: Generalize cannot apply to a Other column; use Fixed instead"},
		{Strategy{Kind: HMAC, Key: key}, Column{Type: Text, MaxLength: 8},
			"invalid anonymization strategy: HMAC cannot apply to a Text column limited to 8: it needs at least 16 to stay joinable; use PartialMask, Redact or Fixed instead"},
		{Strategy{Kind: HMAC, Key: []byte("short")}, Column{Type: Text},
			"invalid anonymization strategy: HMAC needs a key of at least 16 bytes not counting trailing zero bytes, got 5: put a longer random key in the Secret"},
	}
	for _, c := range cases {
		err := c.s.Validate(c.col)
		if err == nil || err.Error() != c.want {
			t.Errorf("Validate(%v, %+v) = %v\nwant %s", c.s, c.col, err, c.want)
		}
	}
}

func TestErrorsNeverContainValue(t *testing.T) {
	secret := "ada.lovelace@example.com"
	cases := []struct {
		s   Strategy
		col Column
		in  any
	}{
		{Strategy{Kind: Generalize}, Column{Type: IP}, secret},
		{Strategy{Kind: Generalize}, Column{Type: IP}, secret + "/24"},
		{Strategy{Kind: Generalize}, Column{Type: IP}, []byte(secret)},
		{Strategy{Kind: Generalize}, Column{Type: Timestamp}, secret},
		{Strategy{Kind: Generalize}, Column{Type: Date}, []byte(secret)},
		{Strategy{Kind: Redact}, Column{Type: Timestamp}, secret},
		{Strategy{Kind: Null}, Column{Type: Text}, secret},
		{Strategy{Kind: HMAC, Key: []byte(secret)[:4]}, Column{Type: Text}, secret},
		{Strategy{Kind: Fixed, Replacement: secret}, Column{Type: IP}, secret},
	}
	for _, c := range cases {
		_, err := c.s.Apply(c.in, c.col)
		if err == nil {
			t.Fatalf("Apply(%v, %+v) succeeded, want an error", c.s, c.col)
		}
		if strings.Contains(err.Error(), "lovelace") {
			t.Errorf("error leaks the value: %v", err)
		}
	}
}

func TestStrategyStringHidesKey(t *testing.T) {
	s := Strategy{Kind: HMAC, Key: []byte("super-secret-key-material")}
	type holder struct{ S Strategy }
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{s, holder{s}, &s} {
			if out := fmt.Sprintf(f, v); strings.Contains(out, "super-secret") || strings.Contains(out, "115 117 112") {
				t.Errorf("%s of a Strategy leaks the key: %s", f, out)
			}
		}
	}
}

func TestApplicable(t *testing.T) {
	cases := []struct {
		col  Column
		want []Kind
	}{
		{Column{Type: Text, Nullable: true}, []Kind{HMAC, PartialMask, Redact, Fixed, Null}},
		{Column{Type: Text, MaxLength: 8}, []Kind{PartialMask, Redact, Fixed}},
		{Column{Type: Bytes}, []Kind{HMAC, PartialMask, Redact, Fixed}},
		{Column{Type: Timestamp, Nullable: true}, []Kind{Generalize, Fixed, Null}},
		{Column{Type: Date}, []Kind{Generalize, Fixed}},
		{Column{Type: IP}, []Kind{Generalize, Fixed}},
		{Column{Type: Other, Nullable: true}, []Kind{Fixed, Null}},
	}
	for _, c := range cases {
		if got := Applicable(c.col); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Applicable(%+v) = %v, want %v", c.col, got, c.want)
		}
	}
}

func TestApplyDoesNotModifyInput(t *testing.T) {
	in := []byte("13812341234")
	for _, s := range []Strategy{{Kind: Redact}, {Kind: PartialMask, KeepFirst: 3}, {Kind: HMAC, Key: key}} {
		for _, ct := range []ColumnType{Text, Bytes} {
			if _, err := s.Apply(in, Column{Type: ct}); err != nil {
				t.Fatal(err)
			}
			if string(in) != "13812341234" {
				t.Fatalf("%s on %s modified its input", s.Kind, ct)
			}
		}
	}
}

func TestColumnTypeString(t *testing.T) {
	for ct, want := range map[ColumnType]string{Text: "Text", Bytes: "Bytes", Timestamp: "Timestamp", Date: "Date", IP: "IP", Other: "Other", 42: "ColumnType(42)"} {
		if got := ct.String(); got != want {
			t.Errorf("ColumnType(%d).String() = %q, want %q", int(ct), got, want)
		}
	}
}
