package mask

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// reportValues adds a values/s metric so the rate can be quoted directly.
func reportValues(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkHMAC measures HMAC-SHA256 anonymization of typical identifiers.
func BenchmarkHMAC(b *testing.B) {
	s := Strategy{Kind: HMAC, Key: []byte("0123456789abcdef0123456789abcdef")}
	cases := []struct {
		name string
		col  Column
		v    any
	}{
		{"email/Text", Column{Type: Text}, "ada.lovelace@example.com"},
		{"email/Text/varchar32", Column{Type: Text, MaxLength: 32}, "ada.lovelace@example.com"},
		{"email/Text/bytes-from-mysql", Column{Type: Text}, []byte("ada.lovelace@example.com")},
		{"phone/Text", Column{Type: Text}, "13812341234"},
		{"uuid/Bytes", Column{Type: Bytes}, []byte("0123456789abcdef")},
		{"1KiB/Text", Column{Type: Text}, strings.Repeat("x", 1024)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Apply(c.v, c.col); err != nil {
					b.Fatal(err)
				}
			}
			reportValues(b)
		})
	}
}

// BenchmarkApply measures the other strategies on typical values.
func BenchmarkApply(b *testing.B) {
	cases := []struct {
		name string
		s    Strategy
		col  Column
		v    any
	}{
		{"Null", Strategy{Kind: Null}, Column{Type: Text, Nullable: true}, "ada"},
		{"Fixed/Text", Strategy{Kind: Fixed, Replacement: "deleted"}, Column{Type: Text, MaxLength: 64}, "ada"},
		{"Fixed/Timestamp", Strategy{Kind: Fixed, Replacement: "1970-01-01T00:00:00Z"}, Column{Type: Timestamp}, time.Now()},
		{"Redact/email", Strategy{Kind: Redact}, Column{Type: Text}, "ada.lovelace@example.com"},
		{"Redact/张三", Strategy{Kind: Redact}, Column{Type: Text}, "张三"},
		{"PartialMask/phone", Strategy{Kind: PartialMask, KeepFirst: 3, KeepLast: 4}, Column{Type: Text}, "13812341234"},
		{"Generalize/Timestamp", Strategy{Kind: Generalize, Granularity: "Month"}, Column{Type: Timestamp}, time.Now()},
		{"Generalize/TimestampText", Strategy{Kind: Generalize}, Column{Type: Timestamp}, "2024-05-17T13:45:12.123+02:00"},
		{"Generalize/IPv4", Strategy{Kind: Generalize}, Column{Type: IP}, netip.MustParseAddr("203.0.113.77")},
		{"Generalize/IPv6Text", Strategy{Kind: Generalize}, Column{Type: IP}, "2001:db8:1234:5678::1"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.s.Apply(c.v, c.col); err != nil {
					b.Fatal(err)
				}
			}
			reportValues(b)
		})
	}
}
