package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// InstallMosquitto names the command that installs the MQTT broker.
const InstallMosquitto = "make peers (or: apt-get install -y mosquitto mosquitto-clients)"

// Mosquitto is an MQTT broker for a test, on 127.0.0.1, with persistence
// on (a restart keeps sessions and queued QoS 1 messages, as a real
// deployment would).
type Mosquitto struct {
	// Addr is host:port; URL is tcp://Addr.
	Addr, URL string
	t         testing.TB
	dir       string
	cmd       *exec.Cmd
	done      chan struct{}
}

// StartMosquitto starts a broker, stopped when the test ends; without
// mosquitto the test fails under CI and is skipped otherwise.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			Missing(t, "mosquitto", InstallMosquitto)
		}
	}
	port := FreePort(t)
	m := &Mosquitto{t: t, dir: t.TempDir(), Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	m.URL = "tcp://" + m.Addr
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 1000000\nlog_dest stderr\nlog_type error\nlog_type warning\n", port, m.dir)
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

func mosquittoBin() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	return "/usr/sbin/mosquitto"
}

// Start starts the broker (again) and waits for its port.
func (m *Mosquitto) Start() {
	m.t.Helper()
	cmd := exec.Command(mosquittoBin(), "-c", filepath.Join(m.dir, "mosquitto.conf"))
	log, err := os.OpenFile(filepath.Join(m.dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		m.t.Fatalf("starting mosquitto: %v", err)
	}
	log.Close()
	m.cmd, m.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(m.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitPort(ctx, m.Addr); err != nil {
		b, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
		m.t.Fatalf("mosquitto did not listen on %s: %v; its log: %s", m.Addr, err, b)
	}
}

// Stop stops the broker (SIGTERM: it saves its sessions) and waits.
func (m *Mosquitto) Stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}
