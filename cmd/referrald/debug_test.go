package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestDebugAddrIsLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		wantErr bool
	}{
		{"127.0.0.1:6060", false},
		{"[::1]:6060", false},
		{"localhost:6060", false},
		{"0.0.0.0:6060", true},
		{":6060", true},
		{"10.0.0.5:6060", true},
		{"example.org:6060", true},
		{"6060", true},
	} {
		_, err := parseConfig([]string{"--dev", "--debug-addr", tc.addr}, func(string) string { return "" }, io.Discard)
		if (err != nil) != tc.wantErr {
			t.Errorf("--debug-addr %s: err = %v, want error %v", tc.addr, err, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "--debug-addr") {
			t.Errorf("--debug-addr %s: error %q does not name the flag", tc.addr, err)
		}
	}
}

func TestServeDebugServesTheProfiler(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := serveDebug(ctx, addr, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("profiler: %d %.80s", resp.StatusCode, body)
	}
	if err := serveDebug(ctx, "0.0.0.0:0", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("serveDebug accepted a non-loopback address")
	}
}
