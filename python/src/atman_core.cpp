// atman._core: the library for Python. Units, plans and their batches,
// neighbourhoods, scoring and the reports are the C++ library's; a Python
// object with base_pass/perturbed_pass is an engine (adapter.hpp), so
// atman.explain runs the library's own explainer over it.
//
// Arrays the library owns contiguously (a unit's positions, a batch's key
// factors and touched keys, deltas, a neighbourhood's CSR) cross as read-only
// NumPy views that keep their owner alive. The sequence and batch handed to an
// engine's passes are views of the explainer's buffers: valid during that call.

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/bind_vector.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <atman/atman.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;
using atman::index_t;

NB_MAKE_OPAQUE(std::vector<atman::unit>)
NB_MAKE_OPAQUE(std::vector<atman::perturbation>)
NB_MAKE_OPAQUE(std::vector<atman::batch>)
NB_MAKE_OPAQUE(std::vector<atman::unit_score>)
NB_MAKE_OPAQUE(std::vector<atman::target_token>)
NB_MAKE_OPAQUE(std::vector<atman::perturbation_deltas>)

namespace {

template <class T>
using view1 = nb::ndarray<nb::numpy, const T, nb::ndim<1>>;
template <class T>
using view2 = nb::ndarray<nb::numpy, const T, nb::ndim<2>>;
template <class T>
using input_array = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;

// A read-only view of data[0..n); owner keeps it alive (none: the caller's
// rv_policy::reference_internal makes it the property's `self`).
template <class T>
view1<T> view_of(const T* data, std::size_t n, nb::handle owner = nb::handle()) {
    return view1<T>(data, {n}, owner);
}
template <class T>
view1<T> view_of(const std::vector<T>& v) {
    return view_of(v.data(), v.size());
}

// A NumPy array that owns v (for values the library does not hold in one
// contiguous buffer).
template <class T>
view1<T> owned_array(std::vector<T> v) {
    auto* heap = new std::vector<T>(std::move(v));
    nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
    return view_of(heap->data(), heap->size(), owner);
}

// obj as a C-contiguous NumPy array of T (NumPy converts lists, other dtypes,
// torch CPU tensors); the returned object owns the array the ndarray views.
template <class T>
std::pair<nb::object, input_array<T>> as_array(nb::handle obj, const char* dtype) {
    nb::object array = nb::module_::import_("numpy").attr("ascontiguousarray")(obj, "dtype"_a = dtype);
    return {array, nb::cast<input_array<T>>(array)};
}

template <class T>
std::vector<T> as_vector(nb::handle obj, const char* dtype, const char* what) {
    auto [owner, a] = as_array<T>(obj, dtype);
    if (a.ndim() != 1)
        throw atman::invalid_argument(std::string(what) + " must be one-dimensional, got " +
                                      std::to_string(a.ndim()) + " dimensions");
    return std::vector<T>(a.data(), a.data() + a.shape(0));
}

// The batch an engine's perturbed_pass receives, with the sequence length
// that sizes its dense key factors.
struct engine_batch {
    atman::batch_view view;
    index_t length = 0;
};

// Arrays of a batch_view: key factors (n_rows x T), touched keys and their
// factors (all rows, concatenated: batch_rows keeps them in one buffer).
template <class Getter>
void add_batch_arrays(nb::class_<typename Getter::owner>& cls) {
    using owner = typename Getter::owner;
    cls.def_prop_ro("mode", [](const owner& o) { return Getter::view(o).mode; })
        .def("__len__", [](const owner& o) { return std::size_t(Getter::view(o).n_rows); })
        .def_prop_ro(
            "key_factors",
            [](const owner& o) {
                const atman::batch_view v = Getter::view(o);
                const float* data = v.n_rows > 0 ? v.rows[0].key_factors : nullptr;
                return view2<float>(data, {std::size_t(v.n_rows), std::size_t(Getter::length(o))},
                                    nb::handle());
            },
            nb::rv_policy::reference_internal,
            "n_rows x T factors, 1 where a row leaves the key untouched")
        .def_prop_ro(
            "first_affected",
            [](const owner& o) {
                const atman::batch_view v = Getter::view(o);
                std::vector<index_t> first;
                for (index_t r = 0; r < v.n_rows; ++r) first.push_back(v.rows[r].first_affected);
                return owned_array(std::move(first));
            },
            nb::rv_policy::move, "per row: positions before it are unchanged (prefix reuse)")
        .def_prop_ro(
            "touched",
            [](const owner& o) {
                const atman::batch_view v = Getter::view(o);
                if (v.n_rows == 0) return view_of<index_t>(nullptr, 0);
                const atman::row_view& last = v.rows[v.n_rows - 1];
                return view_of(v.rows[0].touched,
                               std::size_t(last.touched + last.n_touched - v.rows[0].touched));
            },
            nb::rv_policy::reference_internal,
            "the touched keys of all rows, concatenated (row r: touched_offsets[r:r+2])")
        .def_prop_ro(
            "touched_factors",
            [](const owner& o) {
                const atman::batch_view v = Getter::view(o);
                if (v.n_rows == 0) return view_of<float>(nullptr, 0);
                const atman::row_view& last = v.rows[v.n_rows - 1];
                return view_of(v.rows[0].touched_factors,
                               std::size_t(last.touched_factors + last.n_touched -
                                           v.rows[0].touched_factors));
            },
            nb::rv_policy::reference_internal)
        .def_prop_ro("touched_offsets", [](const owner& o) {
            const atman::batch_view v = Getter::view(o);
            std::vector<index_t> offsets{0};
            for (index_t r = 0; r < v.n_rows; ++r) offsets.push_back(offsets.back() + v.rows[r].n_touched);
            return owned_array(std::move(offsets));
        }, nb::rv_policy::move);
}

struct engine_batch_getter {
    using owner = engine_batch;
    static atman::batch_view view(const owner& o) { return o.view; }
    static index_t length(const owner& o) { return o.length; }
};

// batch_rows built from Python, with the length it was built for.
struct owned_batch_rows {
    atman::batch_rows rows;
    index_t length = 0;
};
struct owned_batch_getter {
    using owner = owned_batch_rows;
    static atman::batch_view view(const owner& o) { return o.rows.view(); }
    static index_t length(const owner& o) { return o.length; }
};

// A Python object as an atman engine (adapter.hpp): base_pass(seq) and
// perturbed_pass(seq, batch) return the CE values, any array-like of floats;
// input_embeddings(seq) (T x dim) enables conceptual suppression.
struct python_engine {
    explicit python_engine(nb::object e) : engine(std::move(e)) {}
    nb::object engine;

    void copy_ce(nb::handle result, const char* pass, index_t expected, double* ce) const {
        auto [owner, a] = as_array<double>(result, "float64");
        if (index_t(a.size()) != expected)
            throw atman::numeric_error(std::string("engine.") + pass + " returned " +
                                       std::to_string(a.size()) + " CE values, expected " +
                                       std::to_string(expected));
        std::copy(a.data(), a.data() + a.size(), ce);
    }
    void base_pass(const atman::sequence_view& seq, double* ce) {
        copy_ce(engine.attr("base_pass")(nb::cast(seq, nb::rv_policy::reference)), "base_pass",
                seq.n_targets, ce);
    }
    void perturbed_pass(const atman::sequence_view& seq, const atman::batch_view& batch, double* ce) {
        engine_batch b{batch, seq.length};
        copy_ce(engine.attr("perturbed_pass")(nb::cast(seq, nb::rv_policy::reference),
                                              nb::cast(b, nb::rv_policy::reference)),
                "perturbed_pass", batch.n_rows * seq.n_targets, ce);
    }
    index_t embedding_dim() const {
        if (!nb::hasattr(engine, "input_embeddings"))
            throw atman::invalid_argument(
                "explain: config.conceptual needs an engine with input_embeddings(seq)");
        return dim_;
    }
    void input_embeddings(const atman::sequence_view&, float* out) const {
        std::copy(embeddings_.begin(), embeddings_.end(), out);
    }

    // The library asks for the dimension before the embeddings; both come
    // from one call, made here.
    void prepare_embeddings(const atman::explain_request& request, const atman::config& cfg) {
        if (!cfg.conceptual || !nb::hasattr(engine, "input_embeddings")) return;
        const atman::teacher_forced_sequence seq(request.prompt_tokens, request.target_tokens);
        const atman::sequence_view v = seq.view();
        auto [owner, a] =
            as_array<float>(engine.attr("input_embeddings")(nb::cast(v, nb::rv_policy::reference)), "float32");
        if (a.ndim() != 2 || index_t(a.shape(0)) != v.length || a.shape(1) < 1)
            throw atman::numeric_error("engine.input_embeddings must return a T x dim array with T = " +
                                       std::to_string(v.length));
        dim_ = index_t(a.shape(1));
        embeddings_.assign(a.data(), a.data() + a.size());
    }

private:
    index_t dim_ = 0;
    std::vector<float> embeddings_;
};

atman::explain_options options_with(nb::object progress) {
    atman::explain_options options;
    if (!progress.is_none()) {
        options.progress = [progress](index_t done, index_t total) {
            nb::object keep_going = progress(done, total);
            return keep_going.is_none() || nb::cast<bool>(keep_going);
        };
    }
    return options;
}

std::vector<atman::token_offsets> token_offsets_of(nb::handle offsets, nb::handle special) {
    auto [owner, a] = as_array<index_t>(offsets, "int64");
    if (a.ndim() != 2 || a.shape(1) != 2)
        throw atman::invalid_argument("offsets must be an n x 2 array of byte offsets [start, end)");
    const std::size_t n = a.shape(0);
    std::vector<bool> is_special(n, false);
    if (!special.is_none()) {
        const std::vector<std::uint8_t> flags = as_vector<std::uint8_t>(special, "uint8", "special");
        if (flags.size() != n)
            throw atman::invalid_argument("special holds " + std::to_string(flags.size()) +
                                          " flags for " + std::to_string(n) + " tokens");
        for (std::size_t i = 0; i < n; ++i) is_special[i] = flags[i] != 0;
    }
    std::vector<atman::token_offsets> tokens(n);
    for (std::size_t i = 0; i < n; ++i) tokens[i] = {a.data()[2 * i], a.data()[2 * i + 1], is_special[i]};
    return tokens;
}

}  // namespace

NB_MODULE(_core, m) {
    m.doc() = "atman: AtMan explanations by attention manipulation (the C++ library's bindings)";

    // Registered base first: nanobind tries the latest translator first.
    static nb::exception<atman::error> error(m, "Error", PyExc_RuntimeError);
    static nb::exception<atman::invalid_argument> invalid(m, "InvalidArgument", PyExc_ValueError);
    static nb::exception<atman::numeric_error> numeric(m, "NumericError", PyExc_ArithmeticError);
    static nb::exception<atman::cancelled> cancelled(m, "Cancelled", error.ptr());

    nb::enum_<atman::manipulation_mode>(m, "Mode")
        .value("multiplicative", atman::manipulation_mode::multiplicative)
        .value("log_additive", atman::manipulation_mode::log_additive);
    nb::enum_<atman::granularity>(m, "Granularity")
        .value("token", atman::granularity::token)
        .value("word", atman::granularity::word)
        .value("sentence", atman::granularity::sentence)
        .value("paragraph", atman::granularity::paragraph)
        .value("delimiter", atman::granularity::delimiter)
        .value("spans", atman::granularity::spans)
        .value("grid", atman::granularity::grid);
    nb::enum_<atman::target_granularity>(m, "TargetGranularity")
        .value("complete", atman::target_granularity::complete)
        .value("token", atman::target_granularity::token);
    nb::enum_<atman::postprocess>(m, "Postprocess")
        .value("none", atman::postprocess::none)
        .value("absolute", atman::postprocess::absolute)
        .value("square", atman::postprocess::square);
    nb::enum_<atman::perturbation_kind>(m, "PerturbationKind")
        .value("unit", atman::perturbation_kind::unit)
        .value("target", atman::perturbation_kind::target);

    m.attr("log_additive_zero_bias") = atman::log_additive_zero_bias;

    const atman::config defaults;
    nb::class_<atman::config>(m, "Config")
        .def(
            "__init__",
            [](atman::config* c, atman::manipulation_mode mode, double factor, bool conceptual,
               double kappa, index_t max_neighbours, bool explain_targets_by_earlier_targets,
               atman::postprocess post, bool normalize, index_t max_batch_rows,
               index_t max_batch_token_rows) {
                new (c) atman::config();
                c->mode = mode;
                c->factor = factor;
                c->conceptual = conceptual;
                c->kappa = kappa;
                c->max_neighbours = max_neighbours;
                c->explain_targets_by_earlier_targets = explain_targets_by_earlier_targets;
                c->post = post;
                c->normalize = normalize;
                c->max_batch_rows = max_batch_rows;
                c->max_batch_token_rows = max_batch_token_rows;
            },
            "mode"_a = defaults.mode, "factor"_a = defaults.factor, "conceptual"_a = defaults.conceptual,
            "kappa"_a = defaults.kappa, "max_neighbours"_a = defaults.max_neighbours,
            "explain_targets_by_earlier_targets"_a = defaults.explain_targets_by_earlier_targets,
            "post"_a = defaults.post, "normalize"_a = defaults.normalize,
            "max_batch_rows"_a = defaults.max_batch_rows,
            "max_batch_token_rows"_a = defaults.max_batch_token_rows)
        .def_rw("mode", &atman::config::mode)
        .def_rw("factor", &atman::config::factor)
        .def_rw("conceptual", &atman::config::conceptual)
        .def_rw("kappa", &atman::config::kappa)
        .def_rw("max_neighbours", &atman::config::max_neighbours)
        .def_rw("explain_targets_by_earlier_targets", &atman::config::explain_targets_by_earlier_targets)
        .def_rw("post", &atman::config::post)
        .def_rw("normalize", &atman::config::normalize)
        .def_rw("max_batch_rows", &atman::config::max_batch_rows)
        .def_rw("max_batch_token_rows", &atman::config::max_batch_token_rows)
        .def("validate", &atman::config::validate);

    // Units.
    nb::class_<atman::byte_range>(m, "ByteRange")
        .def(nb::init<>())
        .def("__init__", [](atman::byte_range* r, index_t start, index_t end) { new (r) atman::byte_range{start, end}; },
             "start"_a, "end"_a)
        .def_rw("start", &atman::byte_range::start)
        .def_rw("end", &atman::byte_range::end);
    nb::class_<atman::position_range>(m, "PositionRange")
        .def("__init__", [](atman::position_range* r, index_t begin, index_t end) { new (r) atman::position_range{begin, end}; },
             "begin"_a, "end"_a)
        .def_rw("begin", &atman::position_range::begin)
        .def_rw("end", &atman::position_range::end);
    nb::class_<atman::grid_layout>(m, "GridLayout")
        .def("__init__",
             [](atman::grid_layout* g, index_t first_position, index_t rows, index_t cols, index_t cell_rows,
                index_t cell_cols) { new (g) atman::grid_layout{first_position, rows, cols, cell_rows, cell_cols}; },
             "first_position"_a = 0, "rows"_a = 0, "cols"_a = 0, "cell_rows"_a = 1, "cell_cols"_a = 1)
        .def_rw("first_position", &atman::grid_layout::first_position)
        .def_rw("rows", &atman::grid_layout::rows)
        .def_rw("cols", &atman::grid_layout::cols)
        .def_rw("cell_rows", &atman::grid_layout::cell_rows)
        .def_rw("cell_cols", &atman::grid_layout::cell_cols);
    nb::class_<atman::unit_options>(m, "UnitOptions")
        .def(
            "__init__",
            [](atman::unit_options* o, atman::granularity by, std::vector<atman::byte_range> range_bytes,
               std::vector<atman::position_range> range_positions, std::string delimiter,
               std::vector<atman::byte_range> spans, std::optional<atman::grid_layout> grid) {
                new (o) atman::unit_options{by, {std::move(range_bytes), std::move(range_positions)},
                                            std::move(delimiter), std::move(spans), grid.value_or(atman::grid_layout{})};
            },
            "by"_a = atman::granularity::word, "range_bytes"_a = std::vector<atman::byte_range>{},
            "range_positions"_a = std::vector<atman::position_range>{}, "delimiter"_a = "",
            "spans"_a = std::vector<atman::byte_range>{}, "grid"_a = nb::none())
        .def_rw("by", &atman::unit_options::by)
        .def_rw("delimiter", &atman::unit_options::delimiter)
        .def_rw("spans", &atman::unit_options::spans)
        .def_rw("grid", &atman::unit_options::grid);

    nb::class_<atman::unit>(m, "Unit")
        .def("__init__",
             [](atman::unit* u, nb::handle positions, index_t start, index_t end) {
                 new (u) atman::unit{as_vector<index_t>(positions, "int64", "positions"), start, end};
             },
             "positions"_a, "start"_a, "end"_a)
        .def_prop_ro("positions", [](const atman::unit& u) { return view_of(u.positions); },
                     nb::rv_policy::reference_internal)
        .def_rw("start", &atman::unit::start)
        .def_rw("end", &atman::unit::end)
        .def("__repr__", [](const atman::unit& u) {
            return "Unit(bytes=[" + std::to_string(u.start) + ", " + std::to_string(u.end) + "), " +
                   std::to_string(u.positions.size()) + " positions from " +
                   std::to_string(u.positions.front()) + ")";
        });
    nb::bind_vector<std::vector<atman::unit>>(m, "UnitList");

    m.def(
        "make_units",
        [](const std::string& text, nb::handle offsets, nb::handle special, const atman::unit_options& options) {
            return atman::make_units(text, token_offsets_of(offsets, special), options);
        },
        "text"_a, "offsets"_a, "special"_a = nb::none(), "options"_a = atman::unit_options{},
        "The units of text (UTF-8) whose token i covers the bytes offsets[i] = [start, end);\n"
        "special[i] true excludes token i (BOS, template markers).");

    // Neighbourhoods.
    nb::class_<atman::neighborhood>(m, "Neighborhood")
        .def_prop_ro("offsets", [](const atman::neighborhood& n) { return view_of(n.offsets); },
                     nb::rv_policy::reference_internal)
        .def_prop_ro("neighbors", [](const atman::neighborhood& n) { return view_of(n.neighbors); },
                     nb::rv_policy::reference_internal)
        .def_prop_ro("similarity", [](const atman::neighborhood& n) { return view_of(n.similarity); },
                     nb::rv_policy::reference_internal)
        .def("__len__", [](const atman::neighborhood& n) { return std::size_t(n.size()); });
    m.def(
        "find_neighbors",
        [](nb::handle embeddings, double kappa, index_t max_neighbors, nb::handle candidates) {
            auto [owner, e] = as_array<float>(embeddings, "float32");
            if (e.ndim() != 2)
                throw atman::invalid_argument("find_neighbors: embeddings must be an n x dim array");
            atman::neighborhood_options options;
            options.kappa = kappa;
            options.max_neighbors = max_neighbors;
            if (!candidates.is_none()) options.candidates = as_vector<index_t>(candidates, "int64", "candidates");
            return atman::find_neighbors(e.data(), index_t(e.shape(0)), index_t(e.shape(1)), options);
        },
        "embeddings"_a, "kappa"_a = 0.7, "max_neighbors"_a = 0, "candidates"_a = nb::none());

    // Plans and their batches.
    nb::class_<atman::perturbation>(m, "Perturbation")
        .def_ro("kind", &atman::perturbation::kind)
        .def_ro("index", &atman::perturbation::index)
        .def_ro("first_affected", &atman::perturbation::first_affected)
        .def_prop_ro("positions", [](const atman::perturbation& p) { return view_of(p.positions); },
                     nb::rv_policy::reference_internal)
        .def_prop_ro("factors", [](const atman::perturbation& p) { return view_of(p.factors); },
                     nb::rv_policy::reference_internal);
    nb::bind_vector<std::vector<atman::perturbation>>(m, "PerturbationList");
    nb::class_<atman::batch>(m, "Batch")
        .def_ro("begin", &atman::batch::begin)
        .def_ro("end", &atman::batch::end)
        .def_ro("token_rows", &atman::batch::token_rows);
    nb::bind_vector<std::vector<atman::batch>>(m, "BatchList");
    nb::class_<atman::plan>(m, "Plan")
        .def_ro("length", &atman::plan::length)
        .def_ro("max_rows", &atman::plan::max_rows)
        .def_ro("max_token_rows", &atman::plan::max_token_rows)
        .def_ro("perturbations", &atman::plan::perturbations)
        .def_ro("batches", &atman::plan::batches)
        .def("token_rows", &atman::plan::token_rows);
    m.def(
        "make_plan",
        [](const std::vector<atman::unit>& units, index_t length, index_t first_scored, const atman::config& cfg,
           const atman::neighborhood* neighbours) {
            return atman::make_plan(units, {length, first_scored, neighbours}, cfg);
        },
        "units"_a, "length"_a, "first_scored"_a, "config"_a, "neighbours"_a = nb::none());
    m.def("validate_plan", &atman::validate_plan, "plan"_a);
    m.def("shard", &atman::shard, "plan"_a, "k"_a, "count"_a);

    nb::class_<owned_batch_rows> batch_rows_class(m, "BatchRows",
                                                  "The rows of one batch of a plan (atman/batch_rows.hpp)");
    add_batch_arrays<owned_batch_getter>(batch_rows_class);
    batch_rows_class
        .def_prop_ro("plan_index",
                     [](const owned_batch_rows& b) {
                         std::vector<index_t> index;
                         for (index_t r = 0; r < b.rows.size(); ++r) index.push_back(b.rows.plan_index(r));
                         return owned_array(std::move(index));
                     }, nb::rv_policy::move)
        .def("token_rows", [](const owned_batch_rows& b) { return b.rows.token_rows(); });
    m.def(
        "batch_rows",
        [](const atman::plan& p, index_t batch, atman::manipulation_mode mode) {
            atman::validate_plan(p);
            const index_t n = index_t(p.batches.size());
            if (batch < 0 || batch >= n)
                throw atman::invalid_argument("batch_rows: batch " + std::to_string(batch) +
                                              " is outside the plan's " + std::to_string(n) + " batches");
            auto rows = std::make_unique<owned_batch_rows>();
            rows->length = p.length;
            rows->rows.assign(p, p.batches[std::size_t(batch)], p.length, mode);
            return rows;
        },
        "plan"_a, "batch"_a, "mode"_a = atman::manipulation_mode::multiplicative);

    // What an engine's passes receive.
    nb::class_<atman::sequence_view>(m, "SequenceView", "Valid during the engine call that received it")
        .def_prop_ro("tokens", [](const atman::sequence_view& s) { return view_of(s.tokens, std::size_t(s.length)); },
                     nb::rv_policy::reference_internal)
        .def_prop_ro("targets",
                     [](const atman::sequence_view& s) { return view_of(s.targets, std::size_t(s.n_targets)); },
                     nb::rv_policy::reference_internal)
        .def_ro("length", &atman::sequence_view::length)
        .def_ro("first_scored", &atman::sequence_view::first_scored)
        .def_ro("n_targets", &atman::sequence_view::n_targets);
    nb::class_<engine_batch> engine_batch_class(m, "BatchView", "Valid during the engine call that received it");
    add_batch_arrays<engine_batch_getter>(engine_batch_class);

    // Requests, deltas, explanations.
    nb::class_<atman::explain_request>(m, "ExplainRequest")
        .def(
            "__init__",
            [](atman::explain_request* r, std::string prompt, nb::handle prompt_tokens, std::string target,
               nb::handle target_tokens, std::vector<atman::unit> units, atman::granularity units_by,
               std::vector<std::string> target_texts, std::string contrast, nb::handle contrast_tokens) {
                new (r) atman::explain_request();
                r->prompt = std::move(prompt);
                r->prompt_tokens = as_vector<std::int32_t>(prompt_tokens, "int32", "prompt_tokens");
                r->target = std::move(target);
                r->target_tokens = as_vector<std::int32_t>(target_tokens, "int32", "target_tokens");
                r->target_texts = std::move(target_texts);
                r->units = std::move(units);
                r->units_by = units_by;
                r->contrast = std::move(contrast);
                if (!contrast_tokens.is_none())
                    r->contrast_tokens = as_vector<std::int32_t>(contrast_tokens, "int32", "contrast_tokens");
            },
            "prompt"_a, "prompt_tokens"_a, "target"_a, "target_tokens"_a, "units"_a,
            "units_by"_a = atman::granularity::spans, "target_texts"_a = std::vector<std::string>{},
            "contrast"_a = "", "contrast_tokens"_a = nb::none())
        .def_ro("prompt", &atman::explain_request::prompt)
        .def_ro("prompt_tokens", &atman::explain_request::prompt_tokens)
        .def_ro("target", &atman::explain_request::target)
        .def_ro("target_tokens", &atman::explain_request::target_tokens)
        .def_ro("target_texts", &atman::explain_request::target_texts)
        .def_ro("units", &atman::explain_request::units)
        .def_ro("units_by", &atman::explain_request::units_by)
        .def_ro("contrast", &atman::explain_request::contrast)
        .def_ro("contrast_tokens", &atman::explain_request::contrast_tokens);

    nb::class_<atman::explanation_stats>(m, "ExplanationStats")
        .def_ro("passes", &atman::explanation_stats::passes)
        .def_ro("token_forwards", &atman::explanation_stats::token_forwards)
        .def_ro("token_forwards_naive", &atman::explanation_stats::token_forwards_naive)
        .def_ro("seconds", &atman::explanation_stats::seconds);
    nb::class_<atman::perturbation_deltas>(m, "PerturbationDeltas")
        .def("__init__",
             [](atman::perturbation_deltas* d, atman::perturbation_kind kind, index_t index, nb::handle target,
                nb::handle contrast) {
                 new (d) atman::perturbation_deltas{
                     kind, index, as_vector<double>(target, "float64", "target deltas"),
                     contrast.is_none() ? std::vector<double>{}
                                        : as_vector<double>(contrast, "float64", "contrast deltas")};
             },
             "kind"_a, "index"_a, "target"_a, "contrast"_a = nb::none())
        .def_ro("kind", &atman::perturbation_deltas::kind)
        .def_ro("index", &atman::perturbation_deltas::index)
        .def_prop_ro("target", [](const atman::perturbation_deltas& d) { return view_of(d.target); },
                     nb::rv_policy::reference_internal)
        .def_prop_ro("contrast", [](const atman::perturbation_deltas& d) { return view_of(d.contrast); },
                     nb::rv_policy::reference_internal);
    nb::bind_vector<std::vector<atman::perturbation_deltas>>(m, "PerturbationDeltasList");
    nb::class_<atman::raw_deltas>(m, "RawDeltas", "The change of each target's CE under each perturbation")
        .def("__init__",
             [](atman::raw_deltas* d, nb::handle base_ce, std::vector<atman::perturbation_deltas> rows,
                nb::handle contrast_base_ce) {
                 new (d) atman::raw_deltas{
                     as_vector<double>(base_ce, "float64", "base_ce"),
                     contrast_base_ce.is_none() ? std::vector<double>{}
                                                : as_vector<double>(contrast_base_ce, "float64", "contrast_base_ce"),
                     std::move(rows), {}};
             },
             "base_ce"_a, "rows"_a, "contrast_base_ce"_a = nb::none())
        .def_prop_ro("base_ce", [](const atman::raw_deltas& d) { return view_of(d.base_ce); },
                     nb::rv_policy::reference_internal)
        .def_prop_ro("contrast_base_ce", [](const atman::raw_deltas& d) { return view_of(d.contrast_base_ce); },
                     nb::rv_policy::reference_internal)
        .def_ro("rows", &atman::raw_deltas::rows)
        .def_ro("stats", &atman::raw_deltas::stats);
    m.def("merge_deltas", &atman::merge_deltas, "parts"_a);

    nb::class_<atman::target_token>(m, "TargetToken")
        .def_ro("id", &atman::target_token::id)
        .def_ro("text", &atman::target_token::text)
        .def_ro("base_ce", &atman::target_token::base_ce);
    nb::bind_vector<std::vector<atman::target_token>>(m, "TargetTokenList");
    nb::class_<atman::unit_score>(m, "UnitScore")
        .def_ro("index", &atman::unit_score::index)
        .def_ro("text", &atman::unit_score::text)
        .def_ro("start", &atman::unit_score::start)
        .def_ro("end", &atman::unit_score::end)
        .def_ro("first_token", &atman::unit_score::first_token)
        .def_ro("last_token", &atman::unit_score::last_token)
        .def_ro("score", &atman::unit_score::score)
        .def_prop_ro("scores_per_target", [](const atman::unit_score& u) { return view_of(u.scores_per_target); },
                     nb::rv_policy::reference_internal);
    nb::bind_vector<std::vector<atman::unit_score>>(m, "UnitScoreList");
    nb::class_<atman::explanation>(m, "Explanation")
        .def_ro("config", &atman::explanation::cfg)
        .def_ro("units_by", &atman::explanation::units_by)
        .def_ro("prompt", &atman::explanation::prompt)
        .def_ro("target", &atman::explanation::target)
        .def_ro("contrast", &atman::explanation::contrast)
        .def_ro("targets", &atman::explanation::targets)
        .def_ro("units", &atman::explanation::units)
        .def_ro("stats", &atman::explanation::stats)
        .def_prop_ro("scores", [](const atman::explanation& e) {
            std::vector<double> scores;
            for (const atman::unit_score& u : e.units) scores.push_back(u.score);
            return owned_array(std::move(scores));
        }, nb::rv_policy::move, "the units' scores, in unit order");
    m.def("make_explanation", &atman::make_explanation, "request"_a, "config"_a, "deltas"_a);

    // The explainer over a Python engine.
    m.def(
        "explain",
        [](nb::object engine, const atman::explain_request& request, const atman::config& cfg, nb::object progress) {
            python_engine e{std::move(engine)};
            e.prepare_embeddings(request, cfg);
            return atman::explain(e, request, cfg, options_with(std::move(progress)));
        },
        "engine"_a, "request"_a, "config"_a, "progress"_a = nb::none(),
        "Plans, runs and scores request on engine (base_pass(seq) -> m CE values,\n"
        "perturbed_pass(seq, batch) -> n_rows x m CE values); progress(done, total)\n"
        "returning False cancels.");
    m.def(
        "plan_explanation",
        [](nb::object engine, const atman::explain_request& request, const atman::config& cfg) {
            python_engine e{std::move(engine)};
            e.prepare_embeddings(request, cfg);
            return atman::plan_explanation(e, request, cfg);
        },
        "engine"_a, "request"_a, "config"_a);
    m.def(
        "explain_deltas",
        [](nb::object engine, const atman::explain_request& request, const atman::config& cfg,
           const atman::plan& p, nb::object progress) {
            python_engine e{std::move(engine)};
            return atman::explain_deltas(e, request, cfg, p, options_with(std::move(progress)));
        },
        "engine"_a, "request"_a, "config"_a, "plan"_a, "progress"_a = nb::none());

    // Reports.
    m.attr("explanation_json_schema") = atman::explanation_json_schema;
    m.def(
        "to_json",
        [](const atman::explanation& e, int indent, atman::target_granularity targets,
           std::vector<std::pair<std::string, std::string>> extra_members) {
            return atman::to_json(e, {indent, targets, std::move(extra_members)});
        },
        "explanation"_a, "indent"_a = 2, "targets"_a = atman::target_granularity::complete,
        "extra_members"_a = std::vector<std::pair<std::string, std::string>>{});
    m.def(
        "to_html",
        [](const atman::explanation& e, std::string title, atman::target_granularity targets) {
            return atman::to_html(e, {std::move(title), targets});
        },
        "explanation"_a, "title"_a = atman::html_options{}.title, "targets"_a = atman::target_granularity::complete);
    m.def(
        "to_terminal",
        [](const atman::explanation& e, bool colour, bool truecolor, index_t top_k, index_t width,
           atman::target_granularity targets) {
            atman::terminal_options options;
            options.colour = colour;
            options.truecolor = truecolor;
            options.top_k = top_k;
            options.width = width;
            options.targets = targets;
            return atman::to_terminal(e, options);
        },
        "explanation"_a, "colour"_a = false, "truecolor"_a = false, "top_k"_a = atman::terminal_options{}.top_k,
        "width"_a = atman::terminal_options{}.width, "targets"_a = atman::target_granularity::complete);
}
