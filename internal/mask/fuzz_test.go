package mask

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Seeds shared by the text fuzz targets.
var textSeeds = []string{
	"", "a", "ada@example.com", "13812341234", "张三", "张三丰", "😀", "👩‍💻", "a\xffb", "\xff", "***", "*a*",
	"\u0301e", "\x00", strings.Repeat("x", 300),
}

// textRunes is what a strategy sees of a Text value: one rune per character,
// U+FFFD for each invalid byte.
func textRunes(s string) []rune { return []rune(s) }

// checkText asserts the invariants of every Text result.
func checkText(t *testing.T, out any, max int) string {
	t.Helper()
	s, ok := out.(string)
	if !ok {
		t.Fatalf("Text result is %T, want string", out)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("Text result %q is not valid UTF-8", s)
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		t.Fatalf("Text result %q has %d runes, limit %d", s, utf8.RuneCountInString(s), max)
	}
	return s
}

// hasOther reports whether s holds a rune other than mask.
func hasOther(s string, mask rune) bool {
	for _, r := range s {
		if r != mask {
			return true
		}
	}
	return false
}

// wantRunes is the rune length a length-preserving strategy writes.
func wantRunes(n, max int) int {
	if max > 0 && n > max {
		return max
	}
	return n
}

// checkStrategyErr fails unless err is a configuration error; it reports
// whether the strategy was valid.
func checkStrategyErr(t *testing.T, s Strategy, col Column, err error) bool {
	t.Helper()
	if verr := s.Validate(col); verr != nil {
		if !errors.Is(err, ErrInvalidStrategy) {
			t.Fatalf("Validate failed (%v) but Apply returned %v", verr, err)
		}
		return false
	}
	if err != nil {
		t.Fatalf("Apply on a valid strategy failed: %v", err)
	}
	return true
}

func FuzzApplyRedact(f *testing.F) {
	for _, s := range textSeeds {
		f.Add(s, int32(0), uint8(0))
		f.Add(s, int32('■'), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in string, mask int32, max uint8) {
		s := Strategy{Kind: Redact, MaskChar: mask}
		col := Column{Type: Text, MaxLength: int(max)}
		out, err := s.Apply(in, col)
		if !checkStrategyErr(t, s, col, err) {
			return
		}
		got := checkText(t, out, col.MaxLength)
		mc := s.maskChar()
		if n := utf8.RuneCountInString(got); n != wantRunes(len(textRunes(in)), col.MaxLength) {
			t.Fatalf("Redact(%q) = %q: %d runes, want %d", in, got, n, wantRunes(len(textRunes(in)), col.MaxLength))
		}
		if hasOther(got, mc) {
			t.Fatalf("Redact(%q) = %q holds a rune other than %q", in, got, mc)
		}
		if hasOther(in, mc) && got == in {
			t.Fatalf("Redact(%q) returned its input", in)
		}
	})
}

func FuzzApplyPartialMask(f *testing.F) {
	for _, s := range textSeeds {
		f.Add(s, uint8(3), uint8(4), int32(0), uint8(0))
		f.Add(s, uint8(1), uint8(1), int32('#'), uint8(2))
	}
	f.Fuzz(func(t *testing.T, in string, first, last uint8, mask int32, max uint8) {
		s := Strategy{Kind: PartialMask, KeepFirst: int(first), KeepLast: int(last), MaskChar: mask}
		col := Column{Type: Text, MaxLength: int(max)}
		out, err := s.Apply(in, col)
		if !checkStrategyErr(t, s, col, err) {
			return
		}
		got := []rune(checkText(t, out, col.MaxLength))
		src := textRunes(in)
		n := len(src)
		if len(got) != wantRunes(n, col.MaxLength) {
			t.Fatalf("PartialMask(%q) = %q: %d runes, want %d", in, string(got), len(got), wantRunes(n, col.MaxLength))
		}
		maskAllRunes := s.KeepFirst+s.KeepLast >= n
		mc := s.maskChar()
		for i, r := range got {
			middle := maskAllRunes || (i >= s.KeepFirst && i < n-s.KeepLast)
			if middle && r != mc {
				t.Fatalf("PartialMask(%q, keep %d+%d) = %q reveals rune %d", in, first, last, string(got), i)
			}
			if !middle && r != src[i] {
				t.Fatalf("PartialMask(%q, keep %d+%d) = %q changed kept rune %d", in, first, last, string(got), i)
			}
		}
	})
}

func FuzzApplyHMAC(f *testing.F) {
	for _, s := range textSeeds {
		f.Add(s, []byte("0123456789abcdef"), []byte("0123456789abcdeF"), uint8(0))
		f.Add(s, []byte(strings.Repeat("k", 100)), []byte("another key, 16+"), uint8(16))
	}
	f.Fuzz(func(t *testing.T, in string, key1, key2 []byte, max uint8) {
		col := Column{Type: Text, MaxLength: int(max)}
		s1, s2 := Strategy{Kind: HMAC, Key: key1}, Strategy{Kind: HMAC, Key: key2}
		out1, err := s1.Apply(in, col)
		if !checkStrategyErr(t, s1, col, err) {
			return
		}
		got := checkText(t, out1, col.MaxLength)
		again, _ := s1.Apply(in, col)
		if again != out1 {
			t.Fatalf("HMAC(%q) not deterministic: %q then %q", in, out1, again)
		}
		if in == "" {
			if got != "" {
				t.Fatalf("HMAC(\"\") = %q, want empty", got)
			}
			return
		}
		if _, err := hex.DecodeString(got[:len(got)&^1]); err != nil || strings.ToLower(got) != got {
			t.Fatalf("HMAC(%q) = %q is not lowercase hex", in, got)
		}
		if want := min(64, wantRunes(64, col.MaxLength)); len(got) != want {
			t.Fatalf("HMAC(%q) = %q has length %d, want %d", in, got, len(got), want)
		}
		if got == in {
			t.Fatalf("HMAC(%q) returned its input", in)
		}
		full, _ := s1.Apply(in, Column{Type: Text})
		if !strings.HasPrefix(full.(string), got) {
			t.Fatalf("truncated HMAC %q is not a prefix of %q", got, full)
		}
		out2, err := s2.Apply(in, col)
		if err == nil && !sameHMACKey(key1, key2) && out2 == out1 {
			t.Fatalf("HMAC(%q) equal under keys %x and %x", in, key1, key2)
		}
	})
}

// sameHMACKey reports whether two keys are the same HMAC-SHA256 key: a key
// longer than the block is hashed first, and a shorter one is padded with zero
// bytes, so trailing zeros do not make a key different.
func sameHMACKey(a, b []byte) bool {
	norm := func(k []byte) []byte {
		if len(k) > sha256.BlockSize {
			sum := sha256.Sum256(k)
			k = sum[:]
		}
		return bytes.TrimRight(k, "\x00")
	}
	return bytes.Equal(norm(a), norm(b))
}

func FuzzApplyFixed(f *testing.F) {
	for _, s := range textSeeds {
		f.Add("deleted", s, uint8(0))
		f.Add(s, "ada", uint8(1))
	}
	f.Fuzz(func(t *testing.T, repl, in string, max uint8) {
		s := Strategy{Kind: Fixed, Replacement: repl}
		col := Column{Type: Text, MaxLength: int(max)}
		out, err := s.Apply(in, col)
		if !checkStrategyErr(t, s, col, err) {
			return
		}
		got := checkText(t, out, col.MaxLength)
		if !strings.HasPrefix(repl, got) || (utf8.RuneCountInString(repl) <= col.MaxLength || col.MaxLength == 0) && got != repl {
			t.Fatalf("Fixed(%q, max %d) = %q", repl, max, got)
		}
	})
}

func FuzzApplyBytes(f *testing.F) {
	for _, s := range textSeeds {
		f.Add([]byte(s), uint8(0), uint8(2), uint8(2), byte('*'), uint8(0))
		f.Add([]byte(s), uint8(1), uint8(0), uint8(0), byte('#'), uint8(8))
		f.Add([]byte(s), uint8(2), uint8(0), uint8(0), byte(0), uint8(0))
	}
	kinds := []Kind{Redact, PartialMask, HMAC, Fixed}
	f.Fuzz(func(t *testing.T, in []byte, kind, first, last uint8, mask byte, max uint8) {
		s := Strategy{Kind: kinds[int(kind)%len(kinds)], KeepFirst: int(first), KeepLast: int(last),
			MaskChar: rune(mask), Key: key, Replacement: "fixed"}
		col := Column{Type: Bytes, MaxLength: int(max)}
		orig := bytes.Clone(in)
		out, err := s.Apply(in, col)
		if !bytes.Equal(in, orig) {
			t.Fatalf("%s modified its input", s.Kind)
		}
		if !checkStrategyErr(t, s, col, err) {
			return
		}
		got, ok := out.([]byte)
		if !ok {
			t.Fatalf("%s on Bytes returned %T, want []byte", s.Kind, out)
		}
		if col.MaxLength > 0 && len(got) > col.MaxLength {
			t.Fatalf("%s returned %d bytes, limit %d", s.Kind, len(got), col.MaxLength)
		}
		switch s.Kind {
		case Redact, PartialMask:
			if len(got) != wantRunes(len(in), col.MaxLength) {
				t.Fatalf("%s(%x) = %x: length %d, want %d", s.Kind, in, got, len(got), wantRunes(len(in), col.MaxLength))
			}
			masked := s.Kind == Redact || s.KeepFirst+s.KeepLast >= len(in)
			for i, b := range got {
				middle := masked || (i >= s.KeepFirst && i < len(in)-s.KeepLast)
				if middle && rune(b) != s.maskChar() || !middle && b != in[i] {
					t.Fatalf("%s(%x, keep %d+%d) = %x: wrong byte %d", s.Kind, in, first, last, got, i)
				}
			}
		case HMAC:
			if len(in) > 0 && (len(got) != wantRunes(32, col.MaxLength) || bytes.Equal(got, in)) {
				t.Fatalf("HMAC(%x) = %x", in, got)
			}
		}
	})
}

func FuzzApplyGeneralizeIP(f *testing.F) {
	for _, s := range []string{"203.0.113.77", "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8:1234:5678::1",
		"::ffff:203.0.113.77", "fe80::1%eth0", "10.1.2.3/8", "2001:db8::/32", "::ffff:1.2.3.4/100", "1.2.3", "", "x"} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(15))
	}
	f.Fuzz(func(t *testing.T, in string, max uint8) {
		col := Column{Type: IP, MaxLength: int(max)}
		out, err := Strategy{Kind: Generalize}.Apply(in, col)
		if err != nil {
			if !errors.Is(err, ErrInvalidValue) {
				t.Fatalf("Generalize(%q) error %v is not ErrInvalidValue", in, err)
			}
			if leaks(err, in, "") {
				t.Fatalf("error leaks the value: %v", err)
			}
			return
		}
		got := checkText(t, out, col.MaxLength)
		inAddr, inBits := parseAddrOrPrefix(t, strings.TrimSpace(in))
		gotAddr, gotBits := parseAddrOrPrefix(t, got)
		if inBits != gotBits {
			t.Fatalf("Generalize(%q) = %q changed the prefix length", in, got)
		}
		checkNetwork(t, inAddr, gotAddr)
		// The same through netip.Addr and netip.Prefix values.
		if inBits < 0 {
			a, _ := Strategy{Kind: Generalize}.Apply(inAddr, Column{Type: IP})
			if a != gotAddr {
				t.Fatalf("Generalize(netip %v) = %v, text gave %v", inAddr, a, gotAddr)
			}
		}
	})
}

// parseAddrOrPrefix parses a test address; bits is -1 for a bare address.
func parseAddrOrPrefix(t *testing.T, s string) (netip.Addr, int) {
	t.Helper()
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return p.Addr(), p.Bits()
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return a, -1
}

// checkNetwork asserts that out is the /24 (IPv4, mapped or not) or /48
// network address of in, without a zone.
func checkNetwork(t *testing.T, in, out netip.Addr) {
	t.Helper()
	bits := 48
	if in.Is4() || in.Is4In6() {
		bits = 24
	}
	if in.Is4() != out.Is4() || in.Is4In6() != out.Is4In6() || out.Zone() != "" {
		t.Fatalf("Generalize(%v) = %v changed the address family or kept the zone", in, out)
	}
	want, _ := in.Unmap().WithZone("").Prefix(bits)
	if !want.Contains(out.Unmap()) || out.Unmap() != want.Addr() {
		t.Fatalf("Generalize(%v) = %v, want the network address of %v", in, out, want)
	}
}

func FuzzApplyGeneralizeTime(f *testing.F) {
	f.Add(int64(1715953512), int64(123456789), int32(0), uint8(0), false)
	f.Add(int64(1715953512), int64(0), int32(8*3600), uint8(1), true)
	f.Add(int64(-62135596800), int64(0), int32(-12*3600), uint8(2), true)
	f.Add(int64(253402300799), int64(999999999), int32(14*3600), uint8(0), true)
	f.Add(int64(0), int64(0), int32(-1), uint8(3), false)
	grans := []string{"", "Day", "Month", "Year"}
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int32, gran uint8, asText bool) {
		loc := time.UTC
		if offset != 0 {
			loc = time.FixedZone("", int(offset%(24*3600)))
		}
		in := time.Unix(sec, nsec).In(loc)
		s := Strategy{Kind: Generalize, Granularity: grans[int(gran)%len(grans)]}
		out, err := s.Apply(in, Column{Type: Timestamp})
		if err != nil {
			t.Fatalf("Generalize(%v): %v", in, err)
		}
		got := out.(time.Time)
		checkTruncated(t, in, got, s.Granularity)
		if !asText || in.Year() < 0 || in.Year() > 9999 || offset%60 != 0 {
			return // RFC 3339 holds four-digit years and whole-minute offsets
		}
		text := in.Format(time.RFC3339Nano)
		outText, err := s.Apply(text, Column{Type: Timestamp})
		if err != nil {
			t.Fatalf("Generalize(%q): %v", text, err)
		}
		if want := got.Format(time.RFC3339Nano); outText != want {
			t.Fatalf("Generalize(%q) = %q, want %q", text, outText, want)
		}
	})
}

// checkTruncated asserts that got is the start of in's day, month or year in
// in's location (fixed zones only: no daylight-saving gaps).
func checkTruncated(t *testing.T, in, got time.Time, gran string) {
	t.Helper()
	if got.Location() != in.Location() || got.After(in) {
		t.Fatalf("Generalize(%v) = %v: later or in another location", in, got)
	}
	if got.Hour() != 0 || got.Minute() != 0 || got.Second() != 0 || got.Nanosecond() != 0 || got.Year() != in.Year() {
		t.Fatalf("Generalize(%v) = %v: not the start of a day in the same year", in, got)
	}
	wantMonth, wantDay := in.Month(), in.Day()
	switch gran {
	case "Month":
		wantDay = 1
	case "Year":
		wantMonth, wantDay = time.January, 1
	}
	if got.Month() != wantMonth || got.Day() != wantDay {
		t.Fatalf("Generalize(%v, %q) = %v", in, gran, got)
	}
}

// FuzzApplyAny throws arbitrary strategies, columns and values at Apply:
// it must never panic, errors must wrap one of the package's errors and never
// contain the value, and results must have the value's Go type.
func FuzzApplyAny(f *testing.F) {
	f.Add(uint8(0), uint8(0), uint8(0), "ada@example.com", "x", 1, 1, int32(0), "Day", 16, 0, true)
	f.Add(uint8(5), uint8(4), uint8(1), "203.0.113.77", "0.0.0.0", 0, 0, int32(0), "", 0, 15, false)
	f.Add(uint8(1), uint8(2), uint8(2), "2024-05-17T13:45:12Z", "1970-01-01", 0, 0, int32(0), "Year", 16, 0, true)
	f.Add(uint8(5), uint8(5), uint8(0), "ada@example.com", "", 0, 0, int32(0), "", 0, 0, true) // IP that is not an IP
	f.Add(uint8(5), uint8(3), uint8(1), "张三@example.com", "", 0, 0, int32(0), "", 0, 0, true)  // time that is not a time
	kinds := []Kind{Null, Fixed, Redact, HMAC, PartialMask, Generalize, "Bogus"}
	f.Fuzz(func(t *testing.T, kind, colType, valueType uint8, in, repl string, first, last int, mask int32,
		gran string, keyLen, max int, nullable bool) {
		s := Strategy{Kind: kinds[int(kind)%len(kinds)], Replacement: repl, KeepFirst: first, KeepLast: last,
			MaskChar: mask, Granularity: gran, Key: bytes.Repeat([]byte("k"), keyLen&63)}
		col := Column{Type: ColumnType(int(colType)%8 - 1), MaxLength: max, Nullable: nullable}
		v := fuzzValue(in, valueType)
		out, err := s.Apply(v, col)
		if err != nil {
			if !errors.Is(err, ErrInvalidStrategy) && !errors.Is(err, ErrInvalidValue) {
				t.Fatalf("error %v wraps neither package error", err)
			}
			if leaks(err, in, gran) {
				t.Fatalf("error leaks the value: %v", err)
			}
			return
		}
		checkResultType(t, s, col, v, out)
		if col.Type == Text {
			if str, ok := out.(string); ok {
				checkText(t, str, col.MaxLength)
			}
		}
	})
}

// leaks reports whether err quotes the value in. Messages are built from
// ASCII templates without '@', so only a value holding '@' or a non-ASCII
// byte can be told apart from the template's own words; quoted is a
// configuration string the message may legitimately quote (a granularity).
func leaks(err error, in, quoted string) bool {
	distinctive := strings.ContainsFunc(in, func(r rune) bool { return r == '@' || r >= utf8.RuneSelf })
	return distinctive && !strings.Contains(quoted, in) && strings.Contains(err.Error(), in)
}

// fuzzValue turns fuzz input into one of the value types Apply receives.
func fuzzValue(in string, valueType uint8) any {
	switch valueType % 7 {
	case 0:
		return in
	case 1:
		return []byte(in)
	case 2:
		return nil
	case 3:
		t, _, _ := parseTime(in, Timestamp)
		return t
	case 4:
		a, _ := netip.ParseAddr(in)
		return a
	case 5:
		p, _ := netip.ParsePrefix(in)
		return p
	}
	return len(in) // a Go type drivers may return for Other columns
}

// checkResultType asserts that a result has the Go type Apply documents.
func checkResultType(t *testing.T, s Strategy, col Column, in, out any) {
	t.Helper()
	if s.Kind == Null || (in == nil && s.Kind != Fixed) {
		if out != nil {
			t.Fatalf("%s(%T) = %T, want nil", s.Kind, in, out)
		}
		return
	}
	if in == nil {
		return // Fixed of nil: the column's type decides
	}
	natural := false
	switch in.(type) {
	case string, []byte:
		natural = true
	case time.Time:
		natural = col.Type == Timestamp || col.Type == Date
	case netip.Addr, netip.Prefix:
		natural = col.Type == IP
	}
	if want, got := typeName(in), typeName(out); natural && want != got {
		t.Fatalf("%s on %s turned %s into %s", s.Kind, col.Type, want, got)
	}
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case []byte:
		return "[]byte"
	case time.Time:
		return "time.Time"
	case netip.Addr:
		return "netip.Addr"
	case netip.Prefix:
		return "netip.Prefix"
	}
	return "other"
}
