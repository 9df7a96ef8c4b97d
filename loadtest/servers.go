package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The servers' addresses, all on loopback (the same as the shell runner
// had, away from make run's).
const (
	upstreamAddr      = "127.0.0.1:18000"
	hookgateAddr      = "127.0.0.1:18080"
	nginxAddr         = "127.0.0.1:18081"
	haproxyAddr       = "127.0.0.1:18082"
	hookgateAsyncAddr = "127.0.0.1:18083"
	receiverAddr      = "127.0.0.1:18040"
)

// nginxConf is nginx as the baseline proxy: one worker, no master, no
// access log, keep-alive to the upstream.
func nginxConf(dir, listen, upstream string) string {
	return strings.NewReplacer("$DIR", dir, "$LISTEN", listen, "$UP", upstream).Replace(`daemon off;
master_process off;
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $DIR;
	proxy_temp_path $DIR;
	upstream api { server $UP; keepalive 256; }
	server {
		listen $LISTEN;
		location / {
			proxy_pass http://api;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_buffering on;
		}
	}
}
`)
}

// haproxyConf is haproxy as the baseline proxy: one thread, keep-alive
// and connection reuse to the upstream.
func haproxyConf(listen, upstream string) string {
	return strings.NewReplacer("$LISTEN", listen, "$UP", upstream).Replace(`global
	nbthread 1
	maxconn 8192
defaults
	mode http
	timeout connect 3s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
	option forwardfor
frontend f
	bind $LISTEN
	default_backend b
backend b
	http-reuse always
	server up $UP maxconn 1024
`)
}

// startServer starts a server on the server CPU and waits until it
// listens on addr, after checking that nothing else does.
func (r *runner) startServer(ctx context.Context, name, addr string, args ...string) (*server, error) {
	if err := portFree(addr); err != nil {
		return nil, err
	}
	s, err := r.fleet.start(name, nil, args...)
	if err != nil {
		return nil, err
	}
	return s, waitPort(ctx, addr, s)
}

// startUpstream starts the demo upstream with flags.
func (r *runner) startUpstream(ctx context.Context, name string, flags ...string) (*server, error) {
	return r.startServer(ctx, name, upstreamAddr,
		append([]string{r.bin("demo-upstream"), "-quiet", "-listen", upstreamAddr}, flags...)...)
}

// startHookgate starts hookgate on addr in front of the upstream, its
// data in a new directory of the work directory.
func (r *runner) startHookgate(ctx context.Context, name, addr string, flags ...string) (*server, error) {
	data, err := os.MkdirTemp(r.work, name+"-")
	if err != nil {
		return nil, err
	}
	return r.startServer(ctx, name, addr, append([]string{r.bin("hookgate"), "-listen", addr, "-ops-listen", "",
		"-upstream", upstreamAddr, "-data-dir", data, "-log-level", "warn"}, flags...)...)
}

// startNginx starts nginx in front of the upstream.
func (r *runner) startNginx(ctx context.Context, name string) (*server, error) {
	dir, err := os.MkdirTemp(r.work, "nginx-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, nginxAddr, upstreamAddr)), 0o644); err != nil {
		return nil, err
	}
	return r.startServer(ctx, name, nginxAddr, r.cfg.Nginx, "-c", conf, "-e", filepath.Join(dir, "error.log"))
}

// startHaproxy starts haproxy in front of the upstream.
func (r *runner) startHaproxy(ctx context.Context, name string) (*server, error) {
	conf := filepath.Join(r.work, "haproxy.cfg")
	if err := os.WriteFile(conf, []byte(haproxyConf(haproxyAddr, upstreamAddr)), 0o644); err != nil {
		return nil, err
	}
	return r.startServer(ctx, name, haproxyAddr, r.cfg.Haproxy, "-db", "-f", conf)
}

// startDelivery starts what the delivery scenarios need: the demo
// upstream with users users, the demo receiver, and hookgate allowed to
// post to it, with flags.
func (r *runner) startDelivery(ctx context.Context, prefix string, users int, flags ...string) (*server, error) {
	if _, err := r.startUpstream(ctx, prefix+"-upstream", "-users", fmt.Sprint(users)); err != nil {
		return nil, err
	}
	if _, err := r.startServer(ctx, prefix+"-receiver", receiverAddr, r.bin("demo-receiver"), "-quiet", "-listen", receiverAddr); err != nil {
		return nil, err
	}
	return r.startHookgate(ctx, prefix+"-hookgate", hookgateAddr, append([]string{"-allow-cidrs", "127.0.0.1/32"}, flags...)...)
}
