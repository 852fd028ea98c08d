package testenv

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InstallIPRoute names the package of ip(8) in skip messages.
const InstallIPRoute = "make peers (or: apt-get install -y iproute2)"

// NetNS is a network namespace joined to the host by a veth pair: the host
// side has HostIP, the namespace side NSIP (a /30 of 10.200.0.0/13), and
// the namespace's loopback is up. A browser inside it offers NSIP as its
// host candidate (browsers never offer loopback ones), and reaches servers
// listening on HostIP.
type NetNS struct {
	Name, HostIP, NSIP string
}

// RequireNetNS makes a network namespace for the test and deletes it when
// the test ends. It needs root and ip(8); without them the test fails
// under CI and is skipped otherwise.
func RequireNetNS(t testing.TB) *NetNS {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root (network namespaces)", "running the tests as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		Missing(t, "ip", InstallIPRoute)
	}
	var b [4]byte
	rand.Read(b[:])
	id := fmt.Sprintf("%04x", binary.BigEndian.Uint16(b[:]))
	n := binary.BigEndian.Uint16(b[2:])
	// 10.200.0.0 - 10.207.255.252 in /30 steps
	octet2, octet3, octet4 := 200+int(n>>13), int(n>>5)&0xff, int(n&0x1f)*4
	ns := &NetNS{
		Name:   "trib" + id,
		HostIP: fmt.Sprintf("10.%d.%d.%d", octet2, octet3, octet4+1),
		NSIP:   fmt.Sprintf("10.%d.%d.%d", octet2, octet3, octet4+2),
	}
	host, inside := "tvh"+id, "tvn"+id
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns.Name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns.Name).Run()
		exec.Command("ip", "link", "del", host).Run()
	})
	run("link", "add", host, "type", "veth", "peer", "name", inside)
	run("link", "set", inside, "netns", ns.Name)
	run("addr", "add", ns.HostIP+"/30", "dev", host)
	run("link", "set", host, "up")
	run("netns", "exec", ns.Name, "ip", "addr", "add", ns.NSIP+"/30", "dev", inside)
	run("netns", "exec", ns.Name, "ip", "link", "set", inside, "up")
	run("netns", "exec", ns.Name, "ip", "link", "set", "lo", "up")
	return ns
}
