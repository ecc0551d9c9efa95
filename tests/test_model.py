"""The AlexNet variants as Keras builds them: the reference's parameter counts and layers, the smallest input."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_sweep.architecture import (
    activation_count,
    feature_map_size,
    min_input_size,
    parameter_count,
    training_memory,
)
from alexnet_sweep.model import build_model


def make(dense_units, input_size=227, image_shape=(32, 32, 3)):
    return build_model(
        name="alexnet",
        input_size=input_size,
        dense_units=dense_units,
        dropout=0.5,
        bn_momentum=0.99,
        image_shape=image_shape,
        num_classes=10,
    )


@pytest.mark.parametrize(("dense_units", "total"), [([4096, 4096], 58_324_746), ([4096, 4096, 4096], 75_106_058)])
def test_parameter_counts_match_the_reference(dense_units, total):
    # The reference notebook's model.summary() totals for alexnet8 and alexnet9 at 227x227, 10 classes.
    assert make(dense_units).count_params() == total
    assert parameter_count(227, dense_units) == total


@pytest.mark.parametrize(("input_size", "dense_units"), [(67, [64]), (99, [32, 16]), (300, [4096, 4096])])
def test_the_framework_free_counts_match_what_keras_builds(input_size, dense_units):
    model = make(dense_units, input_size=input_size)
    assert parameter_count(input_size, dense_units) == model.count_params()
    # Every layer output from the resize on (Flatten only reshapes its input), one example.
    kept = [layer for layer in model.layers if type(layer).__name__ not in ("Rescaling", "Flatten")]
    assert activation_count(input_size, dense_units) == sum(int(np.prod(layer.output.shape[1:])) for layer in kept)


def test_training_memory_of_the_reference_by_hand():
    # 227x227x3 resized image; conv1 55x55x96 and its BatchNorm; pool1 27x27x96; conv2 27x27x256 and BatchNorm;
    # pool2 13x13x256; conv3, conv4 13x13x384; conv5 13x13x256 and BatchNorm; pool5 6x6x256; two Dense(4096) and
    # their Dropout; 10 softmax outputs.
    by_hand = (227 * 227 * 3 + 2 * 55 * 55 * 96 + 27 * 27 * 96 + 2 * 27 * 27 * 256 + 13 * 13 * 256
               + 2 * 13 * 13 * 384 + 2 * 13 * 13 * 256 + 6 * 6 * 256 + 2 * (4096 + 4096) + 10)  # fmt: skip
    assert activation_count(227, [4096, 4096]) == by_hand == 1_463_813
    # Weight, gradient and Adam's two moments in float32 per parameter, and the float32 activations of 64 images.
    assert training_memory(227, [4096, 4096], 64) == 58_324_746 * 16 + 64 * 1_463_813 * 4 == 1_307_932_064
    assert training_memory(227, [4096, 4096], 64, activation_bytes=2) == 58_324_746 * 16 + 64 * 1_463_813 * 2


def test_layer_sequence_is_the_reference():
    model = make([4096, 4096])
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Rescaling", "Resizing",
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Conv2D", "Conv2D",
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense",
    ]  # fmt: skip
    assert model.get_layer("conv1").strides == (4, 4)
    assert model.get_layer("predictions").activation.__name__ == "softmax"


@pytest.mark.parametrize(("input_size", "side"), [(227, 6), (99, 2), (67, 1)])
def test_the_framework_free_arithmetic_matches_the_keras_feature_map(input_size, side):
    # 227 -> 6x6x256 is the reference AlexNet's last feature map; the config checks rely on feature_map_size.
    assert feature_map_size(input_size) == side
    assert tuple(make([64], input_size=input_size).get_layer("pool5").output.shape) == (None, side, side, 256)


def test_min_input_size_is_where_keras_stops_building_the_model():
    assert min_input_size() == 67
    assert feature_map_size(66) < 1
    with pytest.raises(ValueError, match="output size would be zero or negative"):
        make([64], input_size=66)


def test_the_smallest_input_takes_raw_uint8_images_and_tells_them_apart():
    model = make([64], input_size=67)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (3, 10) and np.isfinite(probabilities).all()
    assert not np.allclose(probabilities[0], probabilities[1]), "the images reach the head: outputs differ"


def test_in_model_preprocessing_equals_the_reference_resize():
    model = make([64], input_size=99)
    images = np.random.default_rng(1).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    ours = model.get_layer("resize")(model.get_layer("scale")(images)).numpy()
    reference = np.stack(
        [tf.image.resize(tf.cast(image, tf.float32) / 255, [99, 99], method="bilinear").numpy() for image in images]
    )
    np.testing.assert_allclose(ours, reference, atol=1e-6)
