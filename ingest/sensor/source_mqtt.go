package sensor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ErrBadBroker is a broker URL that cannot be used.
var ErrBadBroker = errors.New("bad MQTT broker URL")

// MQTT subscribes to topic filters of a broker with paho.mqtt.golang:
// QoS 1 by default, a persistent session (the broker keeps QoS 1 messages
// for it while it is away), reconnection with backoff, and the
// subscriptions made again on every connect.
type MQTT struct {
	// Broker is tcp://host:1883, ssl://host:8883 (TLS), ws:// or wss://.
	Broker string
	// Topics are topic filters ("site/+/temp", "plant/#"). At least one.
	Topics []string
	// QoS of the subscriptions: 0, 1 or 2. Default 1.
	QoS *byte
	// ClientID names the session at the broker; keep it stable so that the
	// broker keeps the session. Default "tributary".
	ClientID string
	// Username and Password, when the broker wants them.
	Username, Password string
	// CAFile is a PEM bundle of the broker's CA (TLS); CertFile and
	// KeyFile a client certificate. InsecureSkipVerify skips checking the
	// broker's certificate (tests only).
	CAFile, CertFile, KeyFile string
	InsecureSkipVerify        bool
	// Timeout of connecting. Default 10 s.
	Timeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// Connected is set while the client is connected; Reconnects counts
	// connections after the first.
	Connected  atomic.Bool
	Reconnects atomic.Uint64
	// Refused counts topic filters the broker refused.
	Refused atomic.Uint64
}

// Validate checks the broker URL, topics and QoS without connecting.
func (m *MQTT) Validate() error {
	u, err := url.Parse(m.Broker)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: %q", ErrBadBroker, m.Broker)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return fmt.Errorf("%w: scheme %q is not tcp, ssl, ws or wss", ErrBadBroker, u.Scheme)
	}
	if len(m.Topics) == 0 {
		return errors.New("no MQTT topics")
	}
	for _, t := range m.Topics {
		if t == "" || len(t) > 65535 {
			return fmt.Errorf("bad MQTT topic filter %q", t)
		}
	}
	if m.QoS != nil && *m.QoS > 2 {
		return fmt.Errorf("MQTT QoS %d is not 0, 1 or 2", *m.QoS)
	}
	return nil
}

func (m *MQTT) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{InsecureSkipVerify: m.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if m.CAFile != "" {
		pem, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, fmt.Errorf("MQTT CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("MQTT CA file %s: no certificate", m.CAFile)
		}
		c.RootCAs = pool
	}
	if m.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(m.CertFile, m.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("MQTT client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Message is a message of a subscription.
type Message struct {
	Topic   string
	Payload []byte
	// Recv is when it came.
	Recv time.Time
	// Retained is set on a message the broker kept for new subscribers
	// (an old value, sent again on every subscription).
	Retained bool
	// Ack acknowledges the message (QoS 1 and 2) to the broker, once it
	// is safe: until then the broker keeps it and sends it again after a
	// reconnect. Acknowledgements go in the order the messages came.
	Ack func()
}

// Run connects and hands every message to handle, once (whatever number
// of topic filters match it), from the client's goroutine, in order,
// until ctx ends; handle acknowledges each (Message.Ack) when it is safe.
// Connection failures are retried with backoff and logged; Run returns an
// error only for a configuration it cannot use.
func (m *MQTT) Run(ctx context.Context, handle func(Message)) error {
	if err := m.Validate(); err != nil {
		return err
	}
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	qos := byte(1)
	if m.QoS != nil {
		qos = *m.QoS
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	o := mqtt.NewClientOptions().AddBroker(m.Broker)
	o.SetClientID(m.ClientID)
	if m.ClientID == "" {
		o.SetClientID("tributary")
	}
	o.SetUsername(m.Username)
	o.SetPassword(m.Password)
	o.SetCleanSession(false)
	o.SetOrderMatters(true)
	o.SetAutoReconnect(true)
	o.SetConnectRetry(true)
	o.SetConnectRetryInterval(time.Second)
	o.SetMaxReconnectInterval(30 * time.Second)
	o.SetConnectTimeout(timeout)
	o.SetKeepAlive(30 * time.Second)
	o.SetResumeSubs(true)
	o.SetAutoAckDisabled(true) // handle acknowledges once the reading is durable
	if tc, err := m.tlsConfig(); err != nil {
		return err
	} else if m.CAFile != "" || m.CertFile != "" || m.InsecureSkipVerify {
		o.SetTLSConfig(tc)
	}
	filters := map[string]byte{}
	for _, t := range m.Topics {
		filters[t] = qos
	}
	// every message takes the default handler, once: routes per filter
	// would deliver a message matching two filters twice, and a persistent
	// session's queued messages can come before the subscriptions are
	// made again on a reconnect
	o.SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) {
		handle(Message{Topic: msg.Topic(), Payload: msg.Payload(), Recv: time.Now(), Retained: msg.Retained(), Ack: msg.Ack})
	})
	var connects atomic.Uint64
	o.SetOnConnectHandler(func(c mqtt.Client) {
		m.Connected.Store(true)
		if connects.Add(1) > 1 {
			m.Reconnects.Add(1)
		}
		// subscribe on every connect: a broker that lost its sessions
		// (restarted without persistence) knows nothing of them
		tok := c.SubscribeMultiple(filters, nil)
		go func() {
			if !tok.WaitTimeout(timeout) {
				log.Warn("MQTT subscribe timed out", "broker", redactBroker(m.Broker))
				return
			}
			if err := tok.Error(); err != nil {
				log.Error("MQTT subscribe", "broker", redactBroker(m.Broker), "err", err)
				return
			}
			if st, ok := tok.(*mqtt.SubscribeToken); ok {
				for filter, granted := range st.Result() {
					switch {
					case granted == 0x80:
						log.Error("MQTT subscription refused by the broker", "broker", redactBroker(m.Broker), "topic", filter)
						m.Refused.Add(1)
					case granted < qos:
						log.Warn("MQTT subscription granted at a lower QoS", "broker", redactBroker(m.Broker), "topic", filter, "qos", granted)
					}
				}
			}
			log.Info("MQTT subscribed", "broker", redactBroker(m.Broker), "topics", m.Topics, "qos", qos)
		}()
	})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		m.Connected.Store(false)
		log.Warn("MQTT connection lost; reconnecting", "broker", redactBroker(m.Broker), "err", err)
	})
	o.SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
		log.Debug("MQTT reconnecting", "broker", redactBroker(m.Broker))
	})
	c := mqtt.NewClient(o)
	c.Connect() // retried in the background (ConnectRetry)
	<-ctx.Done()
	c.Disconnect(250)
	m.Connected.Store(false)
	return nil
}

// redactBroker hides credentials in a broker URL.
func redactBroker(b string) string {
	u, err := url.Parse(b)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}
