package fakeapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"

	aclv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/acl/v2beta1"
	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

// fixtureFile is the document of a fixture; see the package doc.
type fixtureFile struct {
	Trunks []fixtureTrunk `yaml:"trunks"`
	Items  []fixtureTrunk `yaml:"items"`
}

type fixtureTrunk struct {
	Ref                 string              `yaml:"ref"`
	APIVersion          string              `yaml:"apiVersion"`
	Name                string              `yaml:"name"`
	SendRegister        bool                `yaml:"sendRegister"`
	InboundURI          string              `yaml:"inboundUri"`
	CreatedAt           int32               `yaml:"createdAt"`
	UpdatedAt           int32               `yaml:"updatedAt"`
	URIs                []fixtureURI        `yaml:"uris"`
	OutboundCredentials *fixtureCredentials `yaml:"outboundCredentials"`
	InboundCredentials  *fixtureCredentials `yaml:"inboundCredentials"`
	AccessControlList   *fixtureACL         `yaml:"accessControlList"`
	Extended            map[string]any      `yaml:"extended"`
}

type fixtureURI struct {
	Host      string `yaml:"host"`
	Port      int32  `yaml:"port"`
	Transport string `yaml:"transport"`
	User      string `yaml:"user"`
	Weight    int32  `yaml:"weight"`
	Priority  int32  `yaml:"priority"`
	Enabled   *bool  `yaml:"enabled"`
}

type fixtureCredentials struct {
	APIVersion string `yaml:"apiVersion"`
	Ref        string `yaml:"ref"`
	Name       string `yaml:"name"`
	Username   string `yaml:"username"`
	Password   string `yaml:"password"`
}

type fixtureACL struct {
	APIVersion string   `yaml:"apiVersion"`
	Ref        string   `yaml:"ref"`
	Name       string   `yaml:"name"`
	Allow      []string `yaml:"allow"`
	Deny       []string `yaml:"deny"`
}

// LoadFixture reads the fixture file at path (format in the package doc) and returns
// its trunks in file order. Errors name the file and, where known, the trunk.
func LoadFixture(path string) ([]*trunksv2beta1.Trunk, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	trunks, err := ParseFixture(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return trunks, nil
}

// ParseFixture decodes a fixture document (format in the package doc).
func ParseFixture(data []byte) ([]*trunksv2beta1.Trunk, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f fixtureFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	key, list := "trunks", f.Trunks
	if len(f.Items) > 0 {
		if len(f.Trunks) > 0 {
			return nil, errors.New("both trunks and items are set: use one")
		}
		key, list = "items", f.Items
	}
	out := make([]*trunksv2beta1.Trunk, 0, len(list))
	seen := make(map[string]int, len(list))
	for i, ft := range list {
		if ft.Ref == "" {
			return nil, fmt.Errorf("%s[%d].ref: missing", key, i)
		}
		if j, dup := seen[ft.Ref]; dup {
			return nil, fmt.Errorf("%s[%d].ref: %q already used by %s[%d]", key, i, ft.Ref, key, j)
		}
		seen[ft.Ref] = i
		t, err := ft.proto()
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func (ft fixtureTrunk) proto() (*trunksv2beta1.Trunk, error) {
	t := &trunksv2beta1.Trunk{
		Ref:                 ft.Ref,
		ApiVersion:          ft.APIVersion,
		Name:                ft.Name,
		SendRegister:        ft.SendRegister,
		InboundUri:          ft.InboundURI,
		CreatedAt:           ft.CreatedAt,
		UpdatedAt:           ft.UpdatedAt,
		OutboundCredentials: ft.OutboundCredentials.proto(),
		InboundCredentials:  ft.InboundCredentials.proto(),
		AccessControlList:   ft.AccessControlList.proto(),
	}
	for _, u := range ft.URIs {
		enabled := true
		if u.Enabled != nil {
			enabled = *u.Enabled
		}
		t.Uris = append(t.Uris, &trunksv2beta1.TrunkURI{
			Host:      u.Host,
			Port:      u.Port,
			Transport: u.Transport,
			User:      u.User,
			Weight:    u.Weight,
			Priority:  u.Priority,
			Enabled:   enabled,
		})
	}
	if ft.Extended != nil {
		ext, err := structpb.NewStruct(ft.Extended)
		if err != nil {
			return nil, fmt.Errorf("extended: %w", err)
		}
		t.Extended = ext
	}
	return t, nil
}

func (fc *fixtureCredentials) proto() *credentialsv2beta1.Credentials {
	if fc == nil {
		return nil
	}
	return &credentialsv2beta1.Credentials{
		ApiVersion: fc.APIVersion,
		Ref:        fc.Ref,
		Name:       fc.Name,
		Username:   fc.Username,
		Password:   fc.Password,
	}
}

func (fa *fixtureACL) proto() *aclv2beta1.AccessControlList {
	if fa == nil {
		return nil
	}
	return &aclv2beta1.AccessControlList{
		ApiVersion: fa.APIVersion,
		Ref:        fa.Ref,
		Name:       fa.Name,
		Allow:      fa.Allow,
		Deny:       fa.Deny,
	}
}
