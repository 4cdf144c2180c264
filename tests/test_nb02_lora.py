"""Lo que debe cumplirse en el cuaderno 02 (las matemáticas de LoRA), con el código de SU solución:
identidad al inicio, recuentos exactos con las formas GQA de k/v y acuerdo con peft en fp32.

Las respuestas solo existen en solutions/ (el paquete ``helpers`` no las trae): estas pruebas
ejecutan las celdas de la solución y comparan lo que hacen con ``peft``.
"""

import copy
import math
import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

import helpers
from helpers import models
from helpers.memory_planner import LINEAR_MODULES, Shape

sys.path.insert(0, str(Path(__file__).parent))
from solution_code import solution_namespace  # noqa: E402

ALL = list(LINEAR_MODULES)
SOL = solution_namespace(
    "02",
    "lora_params",
    "model_lora_params",
    "lora_linear",
    "add_lora",
    "merge",
    "lora_from_update",
    torch=torch,
    nn=nn,
    math=math,
    helpers=helpers,
)
LoRALinear, add_lora, copy_to_peft, merge = SOL["LoRALinear"], SOL["add_lora"], SOL["copy_to_peft"], SOL["merge"]
lora_params, model_lora_params = SOL["lora_params"], SOL["model_lora_params"]


def lora_layers(model):
    return {name: module for name, module in model.named_modules() if isinstance(module, LoRALinear)}


def delta_weight(layer):
    return (layer.B @ layer.A) * layer.scaling


TOL = 1e-5


@pytest.fixture(scope="module")
def tiny():
    return helpers.load_model("tiny", dtype=torch.float32, verbose=False).eval()


@pytest.fixture(scope="module")
def real_config():
    """Configuración del modelo embebido, sin cargar sus pesos."""
    return AutoConfig.from_pretrained(models.embedded_checkpoint())


def gqa_config(**overrides):
    """Llama pequeño con head_dim ≠ hidden/heads, una cabeza de clave/valor y sesgo en la atención."""
    fields = dict(
        vocab_size=128,
        hidden_size=48,
        intermediate_size=80,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        attention_bias=True,
        tie_word_embeddings=False,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def peft_trainable(model, r, targets):
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets))
    return helpers.count_parameters(peft_model).trainable


IDS = torch.tensor([[1, 5, 9, 42, 7, 3, 11, 2], [4, 8, 15, 16, 23, 42, 6, 1]])


# --- la capa -----------------------------------------------------------------------------
@pytest.mark.parametrize("d_in,d_out,r,alpha,bias", [(64, 32, 4, 8, False), (7, 5, 3, 6, True), (16, 16, 1, 1, True)])
def test_identidad_al_inicio_y_recuento(d_in, d_out, r, alpha, bias):
    torch.manual_seed(0)
    base = nn.Linear(d_in, d_out, bias=bias)
    weight = base.weight.detach().clone()
    layer = LoRALinear(base, r, alpha)
    x = torch.randn(2, 3, d_in)
    with torch.no_grad():
        assert torch.equal(layer(x), base(x))
    assert torch.count_nonzero(layer.B) == 0
    bound = 1 / d_in**0.5  # kaiming_uniform_(a=√5) = U(-1/√d_in, 1/√d_in), como peft
    assert 0 < layer.A.abs().max() <= bound
    assert not any(p.requires_grad for p in base.parameters())
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    assert trainable == lora_params(d_in, d_out, r) == r * (d_in + d_out)
    with torch.no_grad():
        layer.A.normal_()
        layer.B.normal_()
        expected = x @ weight.T + (alpha / r) * (x @ layer.A.T) @ layer.B.T + (base.bias if bias else 0)
        assert torch.allclose(layer(x), expected, atol=TOL)
        assert torch.allclose(delta_weight(layer), (alpha / r) * layer.B @ layer.A)
    assert torch.equal(base.weight, weight)


def test_rango_de_la_actualizacion():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(96, 80), r=5, alpha=10)
    with torch.no_grad():
        layer.B.normal_()
        assert torch.linalg.matrix_rank(delta_weight(layer)).item() == 5
        assert torch.linalg.matrix_rank(layer.base.weight + delta_weight(layer)).item() == 80


# --- recuentos con GQA -------------------------------------------------------------------
def test_formas_del_modelo_diminuto_con_gqa(tiny):
    cfg = tiny.config
    shapes = Shape.from_config(cfg).linear_shapes()
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # de verdad hay GQA
    assert shapes["k_proj"] == shapes["v_proj"] == (cfg.hidden_size, cfg.num_key_value_heads * cfg.head_dim)
    block = tiny.model.layers[0]
    for name, module in block.named_modules():
        if isinstance(module, nn.Linear):
            short = name.rsplit(".", 1)[-1]
            assert shapes[short] == (module.in_features, module.out_features), short
    # La misma configuración que helpers.tiny_config.
    tok_cfg = models.tiny_config(helpers.load_tokenizer("tiny"))
    assert Shape.from_config(tok_cfg).linear_shapes() == shapes


@pytest.mark.parametrize(
    "targets", [["q_proj", "v_proj"], ["k_proj", "v_proj"], ["q_proj", "k_proj", "v_proj", "o_proj"], ALL]
)
def test_recuento_igual_que_peft_diminuto(tiny, targets):
    for r in (1, 8):
        assert model_lora_params(tiny.config, r, targets) == peft_trainable(tiny, r, targets)


@pytest.mark.parametrize("targets", [ALL, ["k_proj", "o_proj"]])
def test_recuento_igual_que_peft_head_dim_distinto(targets):
    cfg = gqa_config()
    assert cfg.num_attention_heads * cfg.head_dim != cfg.hidden_size
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    assert model_lora_params(cfg, 3, targets) == peft_trainable(model, 3, targets)


def test_recuento_configuracion_real(real_config):
    """Solo formas: la configuración real de SmolLM2-135M y la cifra publicada (r = 16, 7 capas)."""
    cfg = real_config
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (576, 9, 3, 64)
    shapes = Shape.from_config(cfg).linear_shapes()
    assert shapes["k_proj"] == shapes["v_proj"] == (576, 192)
    assert shapes["q_proj"] == shapes["o_proj"] == (576, 576)
    assert model_lora_params(cfg, 16, ALL) == 4_884_480
    assert model_lora_params(cfg, 8, ["q_proj", "v_proj"]) == 30 * 8 * (576 + 576 + 576 + 192)
    # Las formas coinciden con los módulos que construye transformers (en el dispositivo meta, sin memoria).
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(cfg)
    for name, module in skeleton.model.layers[0].named_modules():
        if isinstance(module, nn.Linear):
            assert shapes[name.rsplit(".", 1)[-1]] == (module.in_features, module.out_features)


def test_cifras_publicadas_de_referencia():
    """Las cifras de reference-figures.md salen de la fórmula (y el fragmento de 4 194 304 es r = 8 en q, v)."""
    llama2_7b = LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32
    )
    assert model_lora_params(llama2_7b, 8, ["q_proj", "v_proj"]) == 4_194_304
    assert model_lora_params(llama2_7b, 16, ["q_proj", "k_proj", "v_proj", "o_proj"]) == 16_777_216
    llama32_1b = LlamaConfig(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
    )
    assert model_lora_params(llama32_1b, 16, ALL) == 11_272_192


# --- inyección, acuerdo con peft y fusión --------------------------------------------------
def test_inyeccion_identidad_y_congelado(tiny):
    ours = copy.deepcopy(tiny)
    names = add_lora(ours, ["q_proj", "v_proj"], r=4, alpha=8)
    assert len(names) == 2 * tiny.config.num_hidden_layers
    assert set(names) == set(lora_layers(ours))
    assert type(ours.model.layers[0].self_attn.k_proj) is nn.Linear
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".A", ".B")) for n in trainable)
    assert helpers.count_parameters(ours).trainable == model_lora_params(tiny.config, 4, ["q_proj", "v_proj"])
    with torch.no_grad():
        assert torch.equal(ours(IDS).logits, tiny(IDS).logits)


def _randomize(model, std=0.05):
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.A.normal_(std=std)
            layer.B.normal_(std=std)


def test_acuerdo_con_peft_fp32(tiny):
    ours, theirs = copy.deepcopy(tiny), copy.deepcopy(tiny)
    add_lora(ours, ["q_proj", "v_proj"], r=4, alpha=8)
    _randomize(ours)
    theirs = get_peft_model(
        theirs, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    ).eval()
    assert helpers.count_parameters(ours).trainable == helpers.count_parameters(theirs).trainable
    copy_to_peft(ours, theirs)
    assert len(lora_layers(ours)) == 2 * tiny.config.num_hidden_layers
    with torch.no_grad():
        a, b, base = ours(IDS).logits, theirs(IDS).logits, tiny(IDS).logits
    assert (a - base).abs().max() > 1e-3  # el adaptador cambia la salida...
    assert (a - b).abs().max() <= TOL  # ...exactamente igual que peft


def test_acuerdo_con_peft_todas_las_capas_con_sesgo():
    torch.manual_seed(1)
    original = LlamaForCausalLM(gqa_config()).eval()
    ours, theirs = copy.deepcopy(original), copy.deepcopy(original)
    add_lora(ours, ALL, r=3, alpha=5)
    assert type(ours.lm_head) is nn.Linear
    _randomize(ours, std=0.2)
    theirs = get_peft_model(theirs, LoraConfig(r=3, lora_alpha=5, target_modules="all-linear", lora_dropout=0.0)).eval()
    assert helpers.count_parameters(ours).trainable == helpers.count_parameters(theirs).trainable
    copy_to_peft(ours, theirs)
    ids = torch.tensor([[3, 17, 99, 4, 64, 8]])
    with torch.no_grad():
        assert (ours(ids).logits - theirs(ids).logits).abs().max() <= TOL


def test_copia_a_peft_con_otros_modulos_falla(tiny):
    ours, theirs = copy.deepcopy(tiny), copy.deepcopy(tiny)
    add_lora(ours, ["q_proj"], r=2, alpha=2)
    theirs = get_peft_model(theirs, LoraConfig(r=2, lora_alpha=2, target_modules=["v_proj"]))
    with pytest.raises(KeyError):  # la solución no encuentra las capas de peft que espera
        copy_to_peft(ours, theirs)


def test_fusion_suma_de_matrices(tiny):
    ours = copy.deepcopy(tiny)
    names = add_lora(ours, ALL, r=4, alpha=8)
    _randomize(ours)
    with torch.no_grad():
        adapter_logits = ours(IDS).logits
        first = lora_layers(ours)[names[0]]
        weight_before = first.base.weight.clone()
        merged = merge(first)
        assert type(merged) is nn.Linear
        assert torch.allclose(merged.weight, first.base.weight + (8 / 4) * first.B @ first.A)
        assert torch.equal(first.base.weight, weight_before)  # no cambia la capa original
    for name in names:
        parent, _, child = name.rpartition(".")
        setattr(ours.get_submodule(parent), child, merge(ours.get_submodule(name)))
    assert helpers.count_parameters(ours).total == helpers.count_parameters(tiny).total
    with torch.no_grad():
        assert (ours(IDS).logits - adapter_logits).abs().max() <= TOL


# --- de una actualización cualquiera al mejor adaptador de rango r ---------------------------
def test_adaptador_extraido_reproduce_una_actualizacion_de_rango_r(tiny):
    """Si ΔW tiene rango r, el adaptador de lora_from_update la reproduce: la capa LoRA con esos A y B
    da la salida de W + ΔW (y un adaptador de rango menor, no)."""
    lora_from_update = SOL["lora_from_update"]
    torch.manual_seed(0)
    base = nn.Linear(24, 16)
    delta = torch.randn(16, 3) @ torch.randn(3, 24)  # rango 3
    target = nn.Linear(24, 16)
    with torch.no_grad():
        target.weight.copy_(base.weight + delta)
        target.bias.copy_(base.bias)
    x = torch.randn(5, 24)
    for r, exact in [(3, True), (5, True), (2, False)]:
        layer = LoRALinear(copy.deepcopy(base), r=r, alpha=2 * r)
        A, B = lora_from_update(delta, r, alpha=2 * r)
        with torch.no_grad():
            layer.A.copy_(A)
            layer.B.copy_(B)
            gap = (layer(x) - target(x)).abs().max().item()
        assert (gap <= 1e-4) == exact, (r, gap)


def test_eckart_young_frente_a_otras_factorizaciones():
    """El error de lora_from_update es el mínimo: ninguna factorización aleatoria de rango r lo mejora."""
    lora_from_update = SOL["lora_from_update"]
    torch.manual_seed(1)
    delta = torch.randn(20, 12, dtype=torch.float64)
    A, B = lora_from_update(delta, 4, alpha=8)
    best = torch.linalg.matrix_norm(2 * B @ A - delta).item()
    sigma = torch.linalg.svdvals(delta)
    assert abs(best - sigma[4:].pow(2).sum().sqrt().item()) < 1e-9
    for _ in range(20):
        P, Q = torch.randn(20, 4, dtype=torch.float64), torch.randn(4, 12, dtype=torch.float64)
        coef = torch.linalg.lstsq(P, delta).solution  # la mejor Q para esa P
        assert torch.linalg.matrix_norm(P @ coef - delta).item() >= best - 1e-9
        assert torch.linalg.matrix_norm(P @ Q - delta).item() >= best


def _grade_cell(grade_id):
    import nbformat
    from solution_code import notebook_path

    nb = nbformat.read(notebook_path("02"), as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.mark.parametrize("grade_id", ["test_lora_linear", "test_add_lora"])
def test_lora_linear_que_fusiona_s_BA_aprueba_y_una_escala_mal_no(grade_id, monkeypatch):
    """Una LoRALinear correcta que calcula (W + s·BA) x redondea distinto que peft (W x + s·B(A x)):
    las celdas calificadas la aprueban (tolerancia relativa) y siguen suspendiendo una escala α en vez de α/r."""
    import torch.nn.functional as F

    monkeypatch.setenv(models.ENV_VAR, "tiny")

    class Merged(LoRALinear):
        def forward(self, x):
            return F.linear(x, self.base.weight + self.scaling * (self.B @ self.A), self.base.bias)

    class WrongScale(LoRALinear):
        def forward(self, x):
            return F.linear(x, self.base.weight + self.alpha * (self.B @ self.A), self.base.bias)

    source = _grade_cell(grade_id).replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", "")
    for cls, passes in ((Merged, True), (WrongScale, False)):
        namespace = solution_namespace(
            "02",
            "add_lora",
            torch=torch,
            nn=nn,
            math=math,
            helpers=helpers,
            LoRALinear=cls,
            get_peft_model=get_peft_model,
            LoraConfig=LoraConfig,
        )
        if passes:
            exec(compile(source, grade_id, "exec"), namespace)
        else:
            with pytest.raises(AssertionError):
                exec(compile(source, grade_id, "exec"), namespace)
