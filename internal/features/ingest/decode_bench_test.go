package ingest

import "testing"

// BenchmarkDecodeEvent measures decodeEvent on the bodies the tracker's
// snippet sends: the two fields alone, and with a few fields it does not read.
func BenchmarkDecodeEvent(b *testing.B) {
	for _, bm := range []struct {
		name string
		body string
	}{
		{"typical", `{"visitor_id":"3f2a9c1e-6b1d-4c55-9a7e-2d1f0b8e4c21","url":"https://shop.example.com/products/42?utm_source=newsletter&color=red"}`},
		{"unknown fields", `{"visitor_id":"3f2a9c1e-6b1d-4c55-9a7e-2d1f0b8e4c21","url":"https://shop.example.com/products/42?utm_source=newsletter&color=red",` +
			`"ts":1732581234567,"referrer":"https://www.google.com/","screen":{"w":1920,"h":1080,"dpr":2.0},"tags":["sale",null,true]}`},
	} {
		body := []byte(bm.body)
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, _, _, err := decodeEvent(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
