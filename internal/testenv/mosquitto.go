package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
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
	// Addr is host:port; URL is tcp://Addr (ssl://Addr with TLS).
	Addr, URL string
	// CAFile is the PEM of the CA that signed a TLS broker's certificate.
	CAFile string
	t      testing.TB
	dir    string
	cmd    *exec.Cmd
	done   chan struct{}
}

// MosquittoOptions add TLS and credentials to a test broker.
type MosquittoOptions struct {
	// TLS serves MQTT over TLS with a certificate for 127.0.0.1 signed by
	// a CA of the test's (CAFile, to trust it).
	TLS bool
	// User and Password are required of clients when set.
	User, Password string
}

// StartMosquitto starts a broker, stopped when the test ends; without
// mosquitto the test fails under CI and is skipped otherwise.
func StartMosquitto(t testing.TB) *Mosquitto {
	return StartMosquittoWith(t, MosquittoOptions{})
}

// StartMosquittoWith starts a broker with TLS or credentials.
func StartMosquittoWith(t testing.TB, o MosquittoOptions) *Mosquitto {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			Missing(t, "mosquitto", InstallMosquitto)
		}
	}
	port := FreePort(t)
	m := &Mosquitto{t: t, dir: t.TempDir(), Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	m.URL = "tcp://" + m.Addr
	// run as the user the test runs as: the test's folders are its own
	// (as root, mosquitto would otherwise drop to its own user)
	conf := fmt.Sprintf("user %s\nlistener %d 127.0.0.1\npersistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 1000000\nlog_dest stderr\nlog_type error\nlog_type warning\n", currentUser(), port, m.dir)
	if o.TLS {
		m.CAFile = filepath.Join(m.dir, "ca.pem")
		cert, key := filepath.Join(m.dir, "server.pem"), filepath.Join(m.dir, "server.key")
		if err := writeTestCerts(m.CAFile, cert, key); err != nil {
			t.Fatal(err)
		}
		m.URL = "ssl://" + m.Addr
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\n", m.CAFile, cert, key)
	}
	if o.User != "" {
		pw := filepath.Join(m.dir, "passwd")
		if out, err := exec.Command(mosquittoPasswdBin(), "-c", "-b", pw, o.User, o.Password).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		conf += fmt.Sprintf("allow_anonymous false\npassword_file %s\n", pw)
	} else {
		conf += "allow_anonymous true\n"
	}
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}

func mosquittoPasswdBin() string {
	if p, err := exec.LookPath("mosquitto_passwd"); err == nil {
		return p
	}
	return "/usr/bin/mosquitto_passwd"
}

// writeTestCerts writes a CA and a server certificate for 127.0.0.1
// signed by it (PEM), for a TLS peer of a test.
func writeTestCerts(caFile, certFile, keyFile string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tributary test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path, typ string
		b         []byte
	}{{caFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", der}, {keyFile, "EC PRIVATE KEY", kb}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.b}), 0o600); err != nil {
			return err
		}
	}
	return nil
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
