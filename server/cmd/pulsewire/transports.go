package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/pulsewire/pulsewire/server/app"
)

// durationEnv is the duration in the environment variable key, or def.
func durationEnv(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}

// defaultClientID is "pulsewire-" and the host name: stable per replica when
// the host name is (a StatefulSet pod, a VM), so a restarted replica resumes
// its MQTT session and the readings the broker kept for it.
func defaultClientID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "local"
	}
	id := "pulsewire-" + h
	if len(id) > 64 {
		id = id[:64]
	}
	return id
}

// ingestFlags are the serve flags of the MQTT and NATS ingestion transports
// (both off unless their broker is given) and the held-reading sweep. The
// MQTT password is read from the environment only, never from a flag (flags
// show in process listings).
func ingestFlags(fs *flag.FlagSet, cfg *app.Config, getenv func(string) string) error {
	m := &cfg.MQTT
	fs.StringVar(&m.Broker, "mqtt-broker", getenv("PULSEWIRE_MQTT_BROKER"),
		"MQTT broker URL(s), comma-separated, e.g. tcp://127.0.0.1:1883 or tls://broker:8883; empty: MQTT ingestion off (env PULSEWIRE_MQTT_BROKER)")
	fs.StringVar(&m.Group, "mqtt-group", env(getenv, "PULSEWIRE_MQTT_GROUP", "pulsewire"),
		"MQTT shared-subscription group the replicas split readings in (env PULSEWIRE_MQTT_GROUP)")
	fs.StringVar(&m.ClientID, "mqtt-client-id", env(getenv, "PULSEWIRE_MQTT_CLIENT_ID", defaultClientID()),
		"MQTT client id, unique and stable per replica: the broker keeps unacknowledged readings under it (env PULSEWIRE_MQTT_CLIENT_ID)")
	fs.StringVar(&m.Username, "mqtt-username", getenv("PULSEWIRE_MQTT_USERNAME"),
		"MQTT username; the password is read from env PULSEWIRE_MQTT_PASSWORD only (env PULSEWIRE_MQTT_USERNAME)")
	m.Password = getenv("PULSEWIRE_MQTT_PASSWORD")
	fs.StringVar(&m.TopicPrefix, "mqtt-topic-prefix", env(getenv, "PULSEWIRE_MQTT_TOPIC_PREFIX", "pulsewire"),
		"first topic level(s) of {prefix}/{tenant}/devices/{deviceId}/readings (env PULSEWIRE_MQTT_TOPIC_PREFIX)")
	expiry, err := durationEnv(getenv, "PULSEWIRE_MQTT_SESSION_EXPIRY", 24*time.Hour)
	if err != nil {
		return err
	}
	fs.DurationVar(&m.SessionExpiry, "mqtt-session-expiry", expiry,
		"how long the broker keeps this replica's session and queued readings while it is down (env PULSEWIRE_MQTT_SESSION_EXPIRY)")

	n := &cfg.NATS
	fs.StringVar(&n.URL, "nats-url", getenv("PULSEWIRE_NATS_URL"),
		"NATS server URL(s), e.g. nats://127.0.0.1:4222; empty: NATS ingestion off (env PULSEWIRE_NATS_URL)")
	fs.StringVar(&n.Stream, "nats-stream", env(getenv, "PULSEWIRE_NATS_STREAM", "PULSEWIRE_READINGS"),
		"JetStream stream of the readings (env PULSEWIRE_NATS_STREAM)")
	fs.StringVar(&n.Subject, "nats-subject", env(getenv, "PULSEWIRE_NATS_SUBJECT", "pulsewire.*.devices.*.readings"),
		"subject pattern: the first '*' is the tenant, the second the device id (env PULSEWIRE_NATS_SUBJECT)")
	fs.StringVar(&n.Durable, "nats-durable", env(getenv, "PULSEWIRE_NATS_DURABLE", "pulsewire-ingest"),
		"durable pull consumer shared by the replicas (env PULSEWIRE_NATS_DURABLE)")
	create, err := strconv.ParseBool(env(getenv, "PULSEWIRE_NATS_CREATE_STREAM", "false"))
	if err != nil {
		return fmt.Errorf("PULSEWIRE_NATS_CREATE_STREAM: %w", err)
	}
	fs.BoolVar(&n.CreateStream, "nats-create-stream", create,
		"create or update the stream (file storage, the subject above) at start (env PULSEWIRE_NATS_CREATE_STREAM)")
	ackWait, err := durationEnv(getenv, "PULSEWIRE_NATS_ACK_WAIT", 30*time.Second)
	if err != nil {
		return err
	}
	fs.DurationVar(&n.AckWait, "nats-ack-wait", ackWait,
		"how long JetStream waits for the ack of a reading before redelivering it; longer than a batch can take to commit (env PULSEWIRE_NATS_ACK_WAIT)")
	pending, err := strconv.Atoi(env(getenv, "PULSEWIRE_NATS_MAX_ACK_PENDING", "1000"))
	if err != nil {
		return fmt.Errorf("PULSEWIRE_NATS_MAX_ACK_PENDING: %w", err)
	}
	fs.IntVar(&n.MaxAckPending, "nats-max-ack-pending", pending,
		"readings delivered and not yet acknowledged, across the replicas (env PULSEWIRE_NATS_MAX_ACK_PENDING)")

	sweep, err := durationEnv(getenv, "PULSEWIRE_INGEST_SWEEP", 30*time.Second)
	if err != nil {
		return err
	}
	fs.DurationVar(&cfg.SweepInterval, "ingest-sweep", sweep,
		"interval of the sweep that releases held readings whose device got a patient through the FHIR API; 0 or negative: off (env PULSEWIRE_INGEST_SWEEP)")
	return nil
}
