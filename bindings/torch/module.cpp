// The Python extension terse.torch._c10d: the "terse" ProcessGroup class (a subclass of
// torch's c10d ProcessGroup, so every torch.distributed call dispatches to it) and the
// compressed DDP hook's engine. terse/torch/_backend.py registers the creator.
#include "grad_ef_hook.hpp"
#include "process_group.hpp"

#include <torch/csrc/utils/pybind.h>

namespace py = pybind11;
using terse_c10d::GradEFHook;
using terse_c10d::ProcessGroupTerse;

PYBIND11_MODULE(_c10d, m) {
  m.doc() = "terse's torch.distributed backend (C++ c10d ProcessGroup over libterse)";
  // torch's ProcessGroup, Store and Work types are registered by torch._C._distributed_c10d;
  // importing it first lets pybind11 find them as bases and argument types.
  py::module_::import("torch.distributed");

  py::class_<ProcessGroupTerse, c10d::ProcessGroup, c10::intrusive_ptr<ProcessGroupTerse>>(
      m, "ProcessGroupTerse")
      .def(py::init([](const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                       double timeout_s) {
             return c10::make_intrusive<ProcessGroupTerse>(store, rank, size, timeout_s);
           }),
           py::arg("store"), py::arg("rank"), py::arg("size"), py::arg("timeout_s"),
           py::call_guard<py::gil_scoped_release>());

  py::class_<GradEFHook, c10::intrusive_ptr<GradEFHook>>(m, "GradEFHook")
      .def(py::init([](const c10::intrusive_ptr<ProcessGroupTerse>& pg, const std::string& spec,
                       bool ef, bool double_way, const std::string& algorithm,
                       const std::string& hierarchy) {
             return c10::make_intrusive<GradEFHook>(pg, spec, ef, double_way, algorithm,
                                                    hierarchy);
           }),
           py::arg("pg"), py::arg("compressor"), py::arg("error_feedback"),
           py::arg("double_way"), py::arg("algorithm") = "", py::arg("hierarchy") = "")
      .def("reduce", &GradEFHook::reduce, py::arg("bucket"), py::arg("ids"), py::arg("counts"),
           py::call_guard<py::gil_scoped_release>())
      .def("worker_error", &GradEFHook::worker_error)
      .def("server_error", &GradEFHook::server_error)
      .def("load_error", &GradEFHook::load_error, py::arg("id"), py::arg("count"),
           py::arg("worker"), py::arg("server"))
      .def("set_calls", &GradEFHook::set_calls, py::arg("calls"))
      .def_property_readonly("calls", &GradEFHook::calls);

  m.def("version", [] { return std::string(terse_version()); });
}
