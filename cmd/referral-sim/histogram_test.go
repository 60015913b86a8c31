package main

import (
	"testing"
	"time"
)

func TestHistogramIsExactForSmallValues(t *testing.T) {
	var h histogram
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {1, 100}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 || h.Mean() != 50 { // 50.5 truncated
		t.Errorf("count %d max %d mean %d", h.Count(), h.Max(), h.Mean())
	}
}

func TestHistogramQuantilesAreWithinOnePercent(t *testing.T) {
	var h histogram
	for v := 1; v <= 100_000; v++ {
		h.Record(time.Duration(v) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := time.Duration(q*100_000) * time.Microsecond
		got := h.Quantile(q)
		if got < exact || float64(got) > float64(exact)*1.01 {
			t.Errorf("Quantile(%v) = %s, want %s to 1%% above", q, got, exact)
		}
	}
	if h.Quantile(1) != 100*time.Millisecond {
		t.Errorf("Quantile(1) = %s, want the maximum 100ms", h.Quantile(1))
	}
}

func TestHistogramTailOfABimodalLatency(t *testing.T) {
	// 990 fast requests and 10 slow ones: p99 is fast, p99.9 is slow.
	var fast, slow histogram
	for range 990 {
		fast.Record(time.Millisecond)
	}
	for range 10 {
		slow.Record(100 * time.Millisecond)
	}
	var h histogram
	h.Merge(&fast)
	h.Merge(&slow)
	h.Merge(&histogram{}) // merging nothing changes nothing
	if h.Count() != 1000 {
		t.Fatalf("count %d", h.Count())
	}
	near := func(got, want time.Duration) bool { return got >= want && float64(got) <= float64(want)*1.008 }
	if p := h.Quantile(0.99); !near(p, time.Millisecond) {
		t.Errorf("p99 = %s, want 1ms", p)
	}
	if p := h.Quantile(0.999); !near(p, 100*time.Millisecond) {
		t.Errorf("p99.9 = %s, want 100ms", p)
	}
	if p := h.Quantile(0.5); p > h.Quantile(0.99) || h.Quantile(0.99) > h.Quantile(0.999) || h.Quantile(0.999) > h.Max() {
		t.Errorf("quantiles not ordered: p50 %s p99 %s p99.9 %s max %s", p, h.Quantile(0.99), h.Quantile(0.999), h.Max())
	}
}

func TestHistogramEdges(t *testing.T) {
	var h histogram
	if h.Quantile(0.99) != 0 || h.Mean() != 0 {
		t.Error("an empty histogram reports something")
	}
	h.Record(-5)              // counts as 0
	h.Record(200 * time.Hour) // beyond the resolved range: last bucket, exact maximum
	if got := h.Quantile(1); got != 200*time.Hour {
		t.Errorf("max = %s, want 200h", got)
	}
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("p50 = %s, want 0", got)
	}
	// Every bucket's upper bound is one below the next bucket's lower bound.
	for i := 1; i < histBuckets-1; i++ {
		if histIndex(histUpper(i)) != i || histIndex(histUpper(i)+1) != i+1 {
			t.Fatalf("bucket %d: upper %d maps to %d, next to %d", i, histUpper(i), histIndex(histUpper(i)), histIndex(histUpper(i)+1))
		}
	}
}
