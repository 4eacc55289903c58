package failpoint

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		env, name string
		wantErr   bool
	}{
		{"", "dump", false},
		{"dump", "dump", true},
		{"dump", "load", false},
		{"dumpx", "dump", false},
		{"load:other", "load", true},
	} {
		t.Setenv(EnvVar, tt.env)
		err := Check(tt.name)
		if gotErr := err != nil; gotErr != tt.wantErr {
			t.Errorf("with %s=%q, Check(%q) = %v, want error %v", EnvVar, tt.env, tt.name, err, tt.wantErr)
		}
		var fe *Error
		if tt.wantErr && (!errors.As(err, &fe) || fe.Name != tt.name) {
			t.Errorf("with %s=%q, Check(%q) = %v, want an *Error named %q", EnvVar, tt.env, tt.name, err, tt.name)
		}
	}
}

func TestCheckPanics(t *testing.T) {
	t.Setenv(EnvVar, "load:panic")
	defer func() {
		var fe *Error
		if r := recover(); r == nil {
			t.Errorf("with %s=load:panic, Check(%q) returned, want a panic", EnvVar, "load")
		} else if err, ok := r.(error); !ok || !errors.As(err, &fe) || fe.Name != "load" {
			t.Errorf("with %s=load:panic, Check(%q) panicked with %v, want an *Error named %q", EnvVar, "load", r, "load")
		}
	}()
	_ = Check("load")
}
