package fakerequester_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"sipreg.dev/tools/fakerequester"
)

// BenchmarkSendMessage measures the default ok answer over loopback, as the
// registry's 100,000-trunk benchmark uses it.
func BenchmarkSendMessage(b *testing.B) {
	for _, noRecord := range []bool{true, false} {
		b.Run(fmt.Sprintf("NoRecord=%v", noRecord), func(b *testing.B) {
			s := fakerequester.New(fakerequester.Options{NoRecord: noRecord})
			c := startB(b, s)
			var n atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					user := fmt.Sprintf("user%06d", n.Add(1))
					if _, err := c.SendMessage(b.Context(), reg{user: user, expires: 600}.request()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
