// Package all registers every power provider nodecycle ships.
package all

import (
	"github.com/nodecycle/nodecycle/power"
	"github.com/nodecycle/nodecycle/power/ipmi"
	"github.com/nodecycle/nodecycle/power/libvirt"
	"github.com/nodecycle/nodecycle/power/redfish"
	"github.com/nodecycle/nodecycle/power/virtualbox"
	"github.com/nodecycle/nodecycle/power/vsphere"
)

// Registry returns a registry with every provider.
func Registry() *power.Registry {
	r := &power.Registry{}
	r.Register(vsphere.Name, vsphere.New)
	r.Register(ipmi.Name, ipmi.New)
	r.Register(redfish.Name, redfish.New)
	r.Register(libvirt.Name, libvirt.New)
	r.Register(virtualbox.Name, virtualbox.New)
	return r
}
