package domain

import "testing"

// benchCases are page URLs as a tracker receives them. Browsers mostly send
// canonical ones, or canonical ones with only campaign tags to drop, which
// the fast path serves without copying; the others need rebuilding.
var benchCases = []struct {
	name      string
	raw       string
	canonical bool // already canonical
	fast      bool // served by the fast path, without allocating
}{
	{"canonical root", "https://www.example.com/", true, true},
	{"canonical page with query", "https://shop.example.com/products/blue-running-shoes?color=blue&size=42", true, true},
	{"only tracking parameters", "https://www.example.com/blog/2024/05/launch?utm_source=newsletter&utm_medium=email&utm_campaign=spring", false, true},
	{"click id", "https://www.example.com/landing?gclid=EAIaIQobChMI8fH2xqGG_wIVx4xoCR0KJQsGEAAYASAAEgJLfPD_BwE", false, true},
	{"utm parameters and others", "https://www.example.com/blog/2024/05/launch?utm_source=newsletter&utm_medium=email&utm_campaign=spring&ref=home", false, false},
	{"case, port, dot segments, escapes", "HTTPS://WWW.Example.com:443/Search/../search/%c3%a4pfel?q=gr%C3%BCn+apfel&page=2&lang=de#results", false, false},
}

func BenchmarkCanonical(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.raw)))
			for b.Loop() {
				if _, err := ParsePageURL(bc.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
