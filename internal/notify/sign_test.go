package notify

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The test vector of the Standard Webhooks specification and reference
// libraries: this secret, id, timestamp and payload sign to this value.
func TestSignMatchesTheStandardWebhooksVector(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		secret string
		ok     bool
	}{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true},
		{"  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", true},       // a trailing newline from a file
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false},                // no prefix
		{"whsec_c2hvcnQ=", false},                                  // 5 bytes: too short
		{"whsec_not base64!", false},                               // not base64
		{"whsec_" + string(make([]byte, 0)), false},                // empty
		{"whsec_" + b64(make([]byte, 65)), false},                  // too long
		{"whsec_" + b64(make([]byte, 64)), true},                   // longest
		{"whsec_" + b64([]byte("0123456789abcdef01234567")), true}, // 24 bytes
	} {
		_, err := ParseSecret(tc.secret)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSecret(%q): err %v, want ok=%v", tc.secret, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("ParseSecret(%q): %v is not ErrInvalidSecret", tc.secret, err)
		}
	}
}

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"erasure.acknowledged"}`)
	signed := func(at time.Time) http.Header {
		h := http.Header{}
		SetHeaders(h, key, "msg_1", at, body)
		return h
	}
	for _, tc := range []struct {
		name string
		h    func() http.Header
		body []byte
		want error
	}{
		{"valid", func() http.Header { return signed(now) }, body, nil},
		{"4m59s old", func() http.Header { return signed(now.Add(-Tolerance + time.Second)) }, body, nil},
		{"5m01s old: a replay", func() http.Header { return signed(now.Add(-Tolerance - time.Second)) }, body, ErrStale},
		{"5m01s ahead", func() http.Header { return signed(now.Add(Tolerance + time.Second)) }, body, ErrStale},
		{"body changed", func() http.Header { return signed(now) }, []byte(`{"type":"erasure.acknowledged "}`), ErrNoSignature},
		{"id changed", func() http.Header { h := signed(now); h.Set(HeaderID, "msg_2"); return h }, body, ErrNoSignature},
		{"timestamp changed", func() http.Header {
			h := signed(now)
			h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return h
		}, body, ErrNoSignature},
		{"signed with another key", func() http.Header {
			h := http.Header{}
			SetHeaders(h, []byte("another key, just as long as the first"), "msg_1", now, body)
			return h
		}, body, ErrNoSignature},
		{"several signatures, one valid", func() http.Header {
			h := signed(now)
			h.Set(HeaderSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,x "+h.Get(HeaderSignature))
			return h
		}, body, nil},
		{"valid signature under another version", func() http.Header {
			h := signed(now)
			h.Set(HeaderSignature, "v2,"+h.Get(HeaderSignature)[3:])
			return h
		}, body, ErrNoSignature},
		{"no signature", func() http.Header { h := signed(now); h.Del(HeaderSignature); return h }, body, ErrMissingHeaders},
		{"no id", func() http.Header { h := signed(now); h.Del(HeaderID); return h }, body, ErrMissingHeaders},
		{"timestamp not a number", func() http.Header { h := signed(now); h.Set(HeaderTimestamp, "soon"); return h }, body, ErrBadTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(key, tc.h(), tc.body, now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}
