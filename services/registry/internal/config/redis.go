package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseRedisParams reads Routr's "host=..,port=..,username=..,password=..,secure=.."
// string. Extensions: addrs=h1:p1;h2:p2 (Cluster, or Sentinel with masterName=...).
// Errors never quote a password.
func ParseRedisParams(s string) (RedisParams, error) {
	r := RedisParams{Host: "localhost", Port: 6379}
	if strings.TrimSpace(s) == "" {
		return r, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok {
			if seen["password"] {
				// Likely the rest of a password that holds a comma: quote nothing.
				return r, errors.New("a parameter after password is not key=value (does the password hold a ','?)")
			}
			return r, fmt.Errorf("%q is not key=value", redactParam(key, part))
		}
		val = strings.TrimSpace(val)
		if seen[key] {
			return r, fmt.Errorf("%s given twice", key)
		}
		seen[key] = true
		switch key {
		case "host":
			if val == "" {
				return r, errors.New("host is empty")
			}
			r.Host = val
		case "port":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 65535 {
				return r, fmt.Errorf("port %q is not a port number (1-65535)", val)
			}
			r.Port = n
		case "username":
			r.Username = val
		case "password":
			r.Password = val
		case "secure":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return r, fmt.Errorf("secure %q is not true or false", val)
			}
			r.Secure = b
		case "addrs":
			for _, a := range strings.Split(val, ";") {
				if _, _, err := splitHostPort(a); err != nil {
					return r, fmt.Errorf("addrs %q: %v", a, err)
				}
				r.Addrs = append(r.Addrs, a)
			}
		case "masterName":
			r.MasterName = val
		default:
			if seen["password"] {
				return r, errors.New("unknown parameter after password (does the password hold a ','?)")
			}
			return r, fmt.Errorf("unknown parameter %q (known: host, port, username, password, secure, addrs, masterName)", key)
		}
	}
	if r.MasterName != "" && len(r.Addrs) == 0 {
		return r, errors.New("masterName needs addrs (the Sentinel addresses)")
	}
	return r, nil
}

// redactParam shows a malformed parameter unless it may be a password.
func redactParam(key, part string) string {
	if strings.HasPrefix(strings.ToLower(key), "pass") {
		return "password..."
	}
	return part
}
