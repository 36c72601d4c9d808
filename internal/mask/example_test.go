package mask_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/lethe-dev/lethe/internal/mask"
)

func ExampleStrategy_Apply() {
	phone := mask.Strategy{Kind: mask.PartialMask, KeepFirst: 3, KeepLast: 4}
	v, _ := phone.Apply("13812341234", mask.Column{Type: mask.Text, MaxLength: 20})
	fmt.Println(v)

	name := mask.Strategy{Kind: mask.Redact}
	v, _ = name.Apply("张三", mask.Column{Type: mask.Text})
	fmt.Println(v)

	ip := mask.Strategy{Kind: mask.Generalize}
	v, _ = ip.Apply(netip.MustParseAddr("203.0.113.77"), mask.Column{Type: mask.IP})
	fmt.Println(v)

	birth := mask.Strategy{Kind: mask.Generalize, Granularity: "Year"}
	v, _ = birth.Apply(time.Date(1815, 12, 10, 8, 0, 0, 0, time.UTC), mask.Column{Type: mask.Date})
	fmt.Println(v.(time.Time).Format(time.DateOnly))

	email := mask.Strategy{Kind: mask.HMAC, Key: []byte("a random key from a Secret")}
	v, _ = email.Apply("ada@example.com", mask.Column{Type: mask.Text, MaxLength: 32})
	fmt.Println(len(v.(string)))
	// Output:
	// 138****1234
	// **
	// 203.0.113.0
	// 1815-01-01
	// 32
}

func ExampleStrategy_Validate() {
	err := mask.Strategy{Kind: mask.Redact}.Validate(mask.Column{Type: mask.Timestamp, Nullable: true})
	fmt.Println(err)
	// Output:
	// invalid anonymization strategy: Redact cannot apply to a Timestamp column; use Generalize, Fixed or Null instead
}
